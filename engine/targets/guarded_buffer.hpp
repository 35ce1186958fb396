// Host output buffers with guard bands, for the CPU twins: the payload is
// poisoned with NaN before a run (an element nobody wrote stays NaN and fails
// every gate), and canary bands on both sides are checked after it (a write
// out of bounds is reported, not silently absorbed). The CUDA side has the
// same discipline in engine/cuda/device_buffer.cuh.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace attncheck {

// A guard band is this many elements on each side (as cuDNN frontend's tests).
inline constexpr std::size_t kGuardElems = 512;
// Canary: a signalling-NaN bit pattern no arithmetic produces.
inline constexpr std::uint32_t kCanaryBits = 0x7fa5a5a5u;

struct GuardBandError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class GuardedHostBuffer {
public:
    GuardedHostBuffer(std::size_t n, std::string name) : n_(n), name_(std::move(name)), buf_(n + 2 * kGuardElems) {
        for (std::size_t i = 0; i < buf_.size(); ++i) std::memcpy(&buf_[i], &kCanaryBits, 4);
        poison();
    }
    float* data() { return buf_.data() + kGuardElems; }
    std::size_t size() const { return n_; }
    void poison() {
        for (std::size_t i = 0; i < n_; ++i) buf_[kGuardElems + i] = std::numeric_limits<float>::quiet_NaN();
    }
    // Throws GuardBandError naming the first overwritten guard element.
    void check_guards() const {
        for (std::size_t i = 0; i < buf_.size(); ++i) {
            if (i == kGuardElems) i += n_;
            if (i >= buf_.size()) break;
            std::uint32_t b;
            std::memcpy(&b, &buf_[i], 4);
            if (b != kCanaryBits) {
                const long long off = i < kGuardElems ? static_cast<long long>(i) - static_cast<long long>(kGuardElems)
                                                      : static_cast<long long>(i - kGuardElems - n_);
                throw GuardBandError(name_ + ": guard band overwritten at " +
                                     (i < kGuardElems ? "offset " + std::to_string(off) + " before the buffer"
                                                      : "offset " + std::to_string(off) + " past the end"));
            }
        }
    }
    std::vector<float> payload() const { return {buf_.begin() + kGuardElems, buf_.begin() + kGuardElems + n_}; }

private:
    std::size_t n_;
    std::string name_;
    std::vector<float> buf_;
};

} // namespace attncheck
