// One device allocation another process on the same GPU can map: the
// external adapter protocol's CUDA IPC transport (docs/adapter-protocol.md).
// attncheck lays a batch's inputs and outputs out in it, sends the handle,
// and the adapter reads and writes the tensors in place, so they need not
// travel through the pipes. Plain C++ (callable without nvcc); built with
// the CUDA backend only.
#pragma once

#include <cstddef>
#include <string>

namespace attncheck {

class IpcBuffer {
public:
    IpcBuffer() = default;
    ~IpcBuffer();
    IpcBuffer(const IpcBuffer&) = delete;
    IpcBuffer& operator=(const IpcBuffer&) = delete;

    // At least `bytes` (a new allocation, and so a new handle, when larger
    // than the current one). Throws CudaError.
    void reserve(size_t bytes);
    size_t size() const { return bytes_; }
    // cudaIpcMemHandle_t as 128 hex digits (changes with each allocation).
    const std::string& handle_hex() const { return handle_; }
    // Synchronous copies and fill at a byte offset.
    void upload(size_t offset, const void* src, size_t n);
    void download(size_t offset, void* dst, size_t n) const;
    void fill(size_t offset, unsigned char byte, size_t n);
    // Waits until every copy and fill has landed: before the handle's user
    // is told to read.
    void sync();

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
    std::string handle_;
};

} // namespace attncheck
