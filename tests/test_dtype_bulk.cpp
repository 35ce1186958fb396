// The whole-tensor conversions (engine/case/dtype_bulk.hpp) against the
// scalar functions they stand for, bit for bit: every fp16 and bf16 bit
// pattern one way, and floats of every exponent, ties, the overflow edge,
// subnormals and NaNs with payloads the other way, at lengths that leave
// vector tails.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/case/dtype_bulk.hpp"

using namespace attncheck;

namespace {

std::uint32_t bits_of(float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, 4);
    return b;
}

float from_bits32(std::uint32_t b) {
    float x;
    std::memcpy(&x, &b, 4);
    return x;
}

// Floats that exercise every branch of the scalar conversions.
std::vector<float> probe_floats() {
    std::vector<float> x;
    std::mt19937 g(7);
    for (int i = 0; i < 2000000; ++i) x.push_back(from_bits32(static_cast<std::uint32_t>(g()))); // every exponent
    for (std::uint32_t h = 0; h < 0x10000; ++h) { // fp16 values, their ties and neighbours
        const float v = f16_bits_to_float(static_cast<std::uint16_t>(h));
        const float w = f16_bits_to_float(static_cast<std::uint16_t>(h + 1));
        x.push_back(v);
        if (std::isfinite(v) && std::isfinite(w)) {
            const float mid = static_cast<float>((static_cast<double>(v) + w) / 2);
            x.insert(x.end(), {mid, std::nextafter(mid, INFINITY), std::nextafter(mid, -INFINITY)});
        }
    }
    for (float v : {65504.0f, 65519.99f, 65520.0f, 1e30f, 0x1p-25f, 0x1.8p-25f, 0x1p-130f, -0.0f, INFINITY, -INFINITY,
                    std::numeric_limits<float>::quiet_NaN(), from_bits32(0x7f800001u), from_bits32(0xffc12345u)})
        x.push_back(v);
    x.push_back(1.0f); // an odd length: a scalar tail
    return x;
}

} // namespace

TEST(DTypeBulk, Fp16FromFloatsEqualsScalarBitForBit) {
    const std::vector<float> x = probe_floats();
    std::vector<std::uint16_t> got(x.size());
    floats_to_f16_bits(x.data(), got.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(got[i], float_to_f16_bits(x[i])) << "float bits 0x" << std::hex << bits_of(x[i]);
    std::cout << "F16C in use: " << (bulk_f16_uses_f16c() ? "yes" : "no (scalar loop)") << "\n";
}

TEST(DTypeBulk, FloatsFromEveryHalfPatternEqualScalar) {
    std::vector<std::uint16_t> h(0x10000 + 3);
    for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<std::uint16_t>(i);
    std::vector<float> f16(h.size()), bf16(h.size());
    f16_bits_to_floats(h.data(), f16.data(), h.size());
    bf16_bits_to_floats(h.data(), bf16.data(), h.size());
    for (size_t i = 0; i < h.size(); ++i) {
        ASSERT_EQ(bits_of(f16[i]), bits_of(f16_bits_to_float(h[i]))) << "fp16 0x" << std::hex << h[i];
        ASSERT_EQ(bits_of(bf16[i]), bits_of(bf16_bits_to_float(h[i]))) << "bf16 0x" << std::hex << h[i];
    }
}

TEST(DTypeBulk, Bf16FromFloatsAndRoundingInPlaceEqualScalar) {
    const std::vector<float> x = probe_floats();
    std::vector<std::uint16_t> got(x.size());
    floats_to_bf16_bits(x.data(), got.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], float_to_bf16_bits(x[i]));
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        std::vector<float> y = x;
        round_floats_to(t, y.data(), y.size());
        for (size_t i = 0; i < x.size(); ++i)
            ASSERT_EQ(bits_of(y[i]), bits_of(round_to(t, x[i]))) << dtype_name(t) << " at " << x[i];
    }
}
