#include "engine/case/dtype_bulk.hpp"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define ATTNCHECK_X86 1
#endif

namespace attncheck {

namespace {

#ifdef ATTNCHECK_X86
// VCVTPS2PH with an explicit round-to-nearest-even immediate gives the
// scalar function's result for every non-NaN float (overflow to inf and
// fp16 subnormals included); NaN lanes (payloads differ) are redone by the
// scalar function. VCVTPH2PS is exact; again NaN lanes are redone, since
// the instruction quiets a signalling NaN and the scalar function keeps it.
__attribute__((target("avx,f16c"))) void to_f16_f16c(const float* in, std::uint16_t* out, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(in + i);
        const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
            for (std::size_t j = i; j < i + 8; ++j) out[j] = float_to_f16_bits(in[j]);
    }
    for (; i < n; ++i) out[i] = float_to_f16_bits(in[i]);
}

__attribute__((target("avx,f16c"))) void from_f16_f16c(const std::uint16_t* in, float* out, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
        _mm256_storeu_ps(out + i, x);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
            for (std::size_t j = i; j < i + 8; ++j) out[j] = f16_bits_to_float(in[j]);
    }
    for (; i < n; ++i) out[i] = f16_bits_to_float(in[i]);
}

// AVX (which includes the OS saving its registers) and CPUID.1:ECX.F16C
// (bit 29); clang 14 has no __builtin_cpu_supports("f16c").
bool have_f16c() {
    static const bool yes = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
    }();
    return yes;
}
#else
bool have_f16c() { return false; }
#endif

} // namespace

bool bulk_f16_uses_f16c() { return have_f16c(); }

void floats_to_f16_bits(const float* in, std::uint16_t* out, std::size_t n) {
#ifdef ATTNCHECK_X86
    if (have_f16c()) return to_f16_f16c(in, out, n);
#endif
    for (std::size_t i = 0; i < n; ++i) out[i] = float_to_f16_bits(in[i]);
}

void f16_bits_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
#ifdef ATTNCHECK_X86
    if (have_f16c()) return from_f16_f16c(in, out, n);
#endif
    for (std::size_t i = 0; i < n; ++i) out[i] = f16_bits_to_float(in[i]);
}

// Branch-free but for NaNs: the compiler vectorizes these as they are.
void floats_to_bf16_bits(const float* in, std::uint16_t* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = float_to_bf16_bits(in[i]);
}

void bf16_bits_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = bf16_bits_to_float(in[i]);
}

void round_floats_to(DType t, float* x, std::size_t n) {
    if (t == DType::f32) return;
    // In blocks, through a small buffer of bits that stays in L1.
    constexpr std::size_t kBlock = 1024;
    std::uint16_t bits[kBlock];
    for (std::size_t at = 0; at < n; at += kBlock) {
        const std::size_t m = std::min(kBlock, n - at);
        if (t == DType::f16) {
            floats_to_f16_bits(x + at, bits, m);
            f16_bits_to_floats(bits, x + at, m);
        } else {
            floats_to_bf16_bits(x + at, bits, m);
            bf16_bits_to_floats(bits, x + at, m);
        }
    }
}

} // namespace attncheck
