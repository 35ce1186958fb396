// The project's own random numbers, so that a case materializes to the same
// bits on every machine and standard library.
//
// std::*_distribution is implementation-defined, and libm's log/cos differ in
// the last ulp between platforms, so neither is used. Uniforms come from
// xoshiro256** seeded by SplitMix64; "normal" values are Irwin-Hall sums of 12
// uniforms minus 6: mean 0, variance 1, support [-6, 6], computed with
// additions only (exact order fixed), hence bit-identical everywhere. The
// bounded support is a feature: the largest value a recipe can produce is
// known before materializing, which is how overflow of a dtype is rejected up
// front.
//
// The same code runs on the device (materialize_device.cu), where nvcc may
// contract a multiply and an add into one FMA. Every product here is exact
// (an integer below 2^53 times 2^-53, or a value in [0, 1) times 2), and an
// FMA of an exact product rounds once, as the separate add does, so the
// streams are bit-identical on host and device whatever the contraction.
#pragma once

#include <cstdint>

#include "engine/case/host_device.hpp"

namespace attncheck {

ATTNCHECK_HD inline std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

class Rng {
public:
    ATTNCHECK_HD explicit Rng(std::uint64_t seed) {
        std::uint64_t s = seed;
        for (auto& w : s_) w = splitmix64(s);
    }
    // Independent stream for a named purpose (tensor, head...), so adding a
    // draw in one place does not shift the values of another.
    ATTNCHECK_HD Rng fork(std::uint64_t tag) const {
        std::uint64_t s = s_[0] ^ (tag * 0xd1342543de82ef95ull) ^ s_[3];
        return Rng(splitmix64(s));
    }
    ATTNCHECK_HD std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    // Uniform in [0, 1) with 53 random bits; exact.
    ATTNCHECK_HD double uniform01() { return static_cast<double>(next() >> 11) * 0x1p-53; }
    // Uniform in [-1, 1).
    ATTNCHECK_HD double uniform_pm1() { return 2.0 * uniform01() - 1.0; }
    // Irwin-Hall(12) - 6: approximately N(0,1), support [-6, 6].
    ATTNCHECK_HD double normal() {
        double acc = 0.0;
        for (int i = 0; i < 12; ++i) acc += uniform01();
        return acc - 6.0;
    }
    // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the bias for
    // the small n used here is far below anything a test could see).
    ATTNCHECK_HD std::uint64_t below(std::uint64_t n) {
#if defined(__CUDA_ARCH__)
        return __umul64hi(next(), n); // the device has no 128-bit integers; same high word
#else
        return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
#endif
    }
    // Uniform integer in [lo, hi].
    ATTNCHECK_HD long long range(long long lo, long long hi) {
        return lo + static_cast<long long>(below(static_cast<std::uint64_t>(hi - lo + 1)));
    }
    ATTNCHECK_HD bool coin(double p_true) { return uniform01() < p_true; }

private:
    ATTNCHECK_HD static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

} // namespace attncheck
