#include "engine/cuda/check.cuh"
#include "engine/cuda/ipc_buffer.hpp"

namespace attncheck {

IpcBuffer::~IpcBuffer() {
    if (ptr_) cudaFree(ptr_); // nothing to do about a failure while going
}

void IpcBuffer::reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    if (ptr_) CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
    // Room to grow: a campaign's batches vary in size, and every new
    // allocation costs the adapter a new mapping.
    const size_t want = bytes + bytes / 2;
    CUDA_CHECK(cudaMalloc(&ptr_, want));
    bytes_ = want;
    cudaIpcMemHandle_t h;
    CUDA_CHECK(cudaIpcGetMemHandle(&h, ptr_));
    static const char* hex = "0123456789abcdef";
    handle_.clear();
    for (size_t i = 0; i < sizeof(h.reserved); ++i) {
        const auto b = static_cast<unsigned char>(h.reserved[i]);
        handle_ += hex[b >> 4];
        handle_ += hex[b & 15];
    }
}

void IpcBuffer::upload(size_t offset, const void* src, size_t n) {
    CUDA_CHECK(cudaMemcpy(static_cast<char*>(ptr_) + offset, src, n, cudaMemcpyHostToDevice));
}

void IpcBuffer::download(size_t offset, void* dst, size_t n) const {
    CUDA_CHECK(cudaMemcpy(dst, static_cast<const char*>(ptr_) + offset, n, cudaMemcpyDeviceToHost));
}

void IpcBuffer::fill(size_t offset, unsigned char byte, size_t n) {
    CUDA_CHECK(cudaMemset(static_cast<char*>(ptr_) + offset, byte, n));
}

void IpcBuffer::sync() { CUDA_CHECK(cudaDeviceSynchronize()); }

} // namespace attncheck
