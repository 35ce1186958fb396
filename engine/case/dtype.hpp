// Storage formats of attention inputs, and exact host-side rounding into them.
//
// Every tensor a target sees is held on the host as float values that are
// exactly representable in the case's dtype, so the oracle works from the very
// bits the target reads. Rounding is done here in integer arithmetic (round to
// nearest, ties to even, subnormals kept, overflow to infinity), never through
// a library or compiler conversion, so a case materializes to the same bits on
// every machine. The GPU smoke test checks these against CUDA's own
// __float2half_rn / __float2bfloat16_rn.
//
// The bit conversions and round_to are ATTNCHECK_HD: the GPU materializer
// (materialize_device.cu) rounds with this very code, so host and device
// cases agree by construction. They are integer code apart from one exact
// float product (a subnormal fp16 fraction times 2^-24).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "engine/case/host_device.hpp"

namespace attncheck {

enum class DType { f32, f16, bf16 };

inline const char* dtype_name(DType t) {
    switch (t) {
        case DType::f32:
            return "fp32";
        case DType::f16:
            return "fp16";
        case DType::bf16:
            return "bf16";
    }
    return "?";
}

inline std::optional<DType> parse_dtype(std::string_view s) {
    if (s == "fp32") return DType::f32;
    if (s == "fp16") return DType::f16;
    if (s == "bf16") return DType::bf16;
    return std::nullopt;
}

// Unit roundoff u = 2^-p for a format with p significand bits (implicit bit
// included): fp32 p=24, fp16 p=11, bf16 p=8.
inline double unit_roundoff(DType t) {
    switch (t) {
        case DType::f32:
            return 0x1p-24;
        case DType::f16:
            return 0x1p-11;
        case DType::bf16:
            return 0x1p-8;
    }
    return 1.0;
}

// Smallest positive normal value, and half the spacing of the subnormals
// (the largest absolute error of rounding to nearest in the subnormal range).
inline double min_normal(DType t) {
    switch (t) {
        case DType::f32:
            return 0x1p-126;
        case DType::f16:
            return 0x1p-14;
        case DType::bf16:
            return 0x1p-126;
    }
    return 0.0;
}
inline double half_subnormal_spacing(DType t) {
    switch (t) {
        case DType::f32:
            return 0x1p-150;
        case DType::f16:
            return 0x1p-25;
        case DType::bf16:
            return 0x1p-134;
    }
    return 0.0;
}

// Largest finite value of the format.
inline double max_finite(DType t) {
    switch (t) {
        case DType::f32:
            return static_cast<double>(std::numeric_limits<float>::max());
        case DType::f16:
            return 65504.0;
        case DType::bf16:
            return 0x1.FEp127; // 3.3895e38
    }
    return 0.0;
}

ATTNCHECK_HD inline std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
#endif
}
ATTNCHECK_HD inline float bits_float(std::uint32_t b) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    float f;
    std::memcpy(&f, &b, 4);
    return f;
#endif
}

// float -> bf16 bits, round to nearest even. NaN stays a (quiet) NaN.
ATTNCHECK_HD inline std::uint16_t float_to_bf16_bits(float f) {
    std::uint32_t b = float_bits(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x40u);
    std::uint32_t lsb = (b >> 16) & 1u;
    b += 0x7fffu + lsb; // carries into the exponent give inf exactly when due
    return static_cast<std::uint16_t>(b >> 16);
}
ATTNCHECK_HD inline float bf16_bits_to_float(std::uint16_t h) {
    return bits_float(static_cast<std::uint32_t>(h) << 16);
}

// float -> IEEE binary16 bits, round to nearest even, subnormals and overflow
// handled as the hardware does (__float2half_rn).
ATTNCHECK_HD inline std::uint16_t float_to_f16_bits(float f) {
    std::uint32_t x = float_bits(f);
    std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
    if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u); // >= 65520 rounds to inf
    if (ax < 0x33000000u) return static_cast<std::uint16_t>(sign);            // < 2^-25 rounds to 0
    std::uint32_t exp = ax >> 23;
    std::uint32_t mant = (ax & 0x7fffffu) | 0x800000u; // 24-bit significand
    int shift;                                         // bits to drop
    std::uint32_t hexp;
    if (exp < 113) {                         // result is subnormal in fp16 (value < 2^-14)
        shift = static_cast<int>(126 - exp); // keep bits for 2^-24 granularity
        hexp = 0;
    } else {
        shift = 13;
        hexp = exp - 112;
        mant &= 0x7fffffu;
    }
    std::uint32_t kept = mant >> shift;
    std::uint32_t rem = mant & ((1u << shift) - 1u);
    std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (kept & 1u))) ++kept;
    // For normals kept is the 10-bit fraction; a carry out of it bumps the
    // exponent, which the addition below does naturally.
    std::uint32_t h = (hexp << 10) + kept;
    return static_cast<std::uint16_t>(sign | h);
}

ATTNCHECK_HD inline float f16_bits_to_float(std::uint16_t h) {
    std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1fu;
    std::uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        // subnormal: mant * 2^-24, exact in float
        float v = static_cast<float>(mant) * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

// Round a float to the nearest value of dtype t (returned as a float, which
// holds it exactly).
ATTNCHECK_HD inline float round_to(DType t, float x) {
    switch (t) {
        case DType::f32:
            return x;
        case DType::f16:
            return f16_bits_to_float(float_to_f16_bits(x));
        case DType::bf16:
            return bf16_bits_to_float(float_to_bf16_bits(x));
    }
    return x;
}

// Round a double to float (IEEE conversion, exact and portable), then to t.
// On the device the conversion is spelled __double2float_rn so that its
// rounding mode is explicit. The host conversion keeps a NaN's sign and
// payload; the device's need not, so NaNs are rounded on the host wherever
// bits must match (materialize_device.cu does so for specials).
ATTNCHECK_HD inline float round_to(DType t, double x) {
#if defined(__CUDA_ARCH__)
    return round_to(t, __double2float_rn(x));
#else
    return round_to(t, static_cast<float>(x));
#endif
}

} // namespace attncheck
