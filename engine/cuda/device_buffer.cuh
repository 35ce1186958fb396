// Device buffers with NaN poisoning and guard bands. Every kernel output is
// poisoned before the launch and every buffer's guard bands are checked
// after; a guard band that changed means an out-of-bounds write (bug class
// 9), reported with the buffer's name and the offset.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda/check.cuh"
#include "engine/targets/guarded_buffer.hpp"

namespace attncheck {

// Bytes of guard on each side: 512 elements of the widest type used (fp32).
inline constexpr std::size_t kGuardBytes = kGuardElems * 4;
inline constexpr unsigned char kGuardByte = 0xa5;  // fp16 0xa5a5 / fp32 0xa5a5a5a5: unusual finite values
inline constexpr unsigned char kPoisonByte = 0xff; // all-ones: NaN in fp32, fp16 and bf16

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    DeviceBuffer(std::size_t n, std::string name) : n_(n), name_(std::move(name)) {
        CUDA_CHECK(cudaMalloc(&raw_, bytes() + 2 * kGuardBytes));
        CUDA_CHECK(cudaMemset(raw_, kGuardByte, bytes() + 2 * kGuardBytes));
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        std::swap(raw_, o.raw_);
        std::swap(n_, o.n_);
        std::swap(name_, o.name_);
        return *this;
    }
    ~DeviceBuffer() {
        if (raw_) cudaFree(raw_); // destructor: cannot throw; errors surface on the next checked call
    }
    T* get() { return reinterpret_cast<T*>(static_cast<unsigned char*>(raw_) + kGuardBytes); }
    const T* get() const { return reinterpret_cast<const T*>(static_cast<const unsigned char*>(raw_) + kGuardBytes); }
    std::size_t size() const { return n_; }
    std::size_t bytes() const { return n_ * sizeof(T); }
    void poison() {
        if (n_) CUDA_CHECK(cudaMemset(get(), kPoisonByte, bytes()));
    }
    void upload(const std::vector<T>& h) {
        if (h.size() != n_) throw std::logic_error(name_ + ": upload size mismatch");
        if (n_) CUDA_CHECK(cudaMemcpy(get(), h.data(), bytes(), cudaMemcpyHostToDevice));
    }
    std::vector<T> download() const {
        std::vector<T> h(n_);
        if (n_) CUDA_CHECK(cudaMemcpy(h.data(), get(), bytes(), cudaMemcpyDeviceToHost));
        return h;
    }
    // Throws GuardBandError when either band changed.
    void check_guards() const {
        std::vector<unsigned char> g(2 * kGuardBytes);
        CUDA_CHECK(cudaMemcpy(g.data(), raw_, kGuardBytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(g.data() + kGuardBytes, static_cast<const unsigned char*>(raw_) + kGuardBytes + bytes(),
                              kGuardBytes, cudaMemcpyDeviceToHost));
        for (std::size_t i = 0; i < g.size(); ++i)
            if (g[i] != kGuardByte) {
                const bool before = i < kGuardBytes;
                throw GuardBandError(
                    name_ + ": device guard band overwritten at byte " +
                    std::to_string(before ? static_cast<long long>(i) - static_cast<long long>(kGuardBytes)
                                          : static_cast<long long>(i - kGuardBytes)) +
                    (before ? " before the buffer" : " past the end"));
            }
    }

private:
    void* raw_ = nullptr;
    std::size_t n_ = 0;
    std::string name_;
};

} // namespace attncheck
