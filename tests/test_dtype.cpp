// Host rounding to fp16 / bf16 against the definition of round-to-nearest-
// even, checked exhaustively: for every pair of adjacent representable
// values, the midpoint must go to the even one, and points just inside the
// midpoint to the nearer one. This is independent of how dtype.hpp rounds.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/case/dtype.hpp"

using namespace attncheck;

namespace {

float next_up(float x) { return std::nextafter(x, INFINITY); }
float next_down(float x) { return std::nextafter(x, -INFINITY); }

template <class ToBits, class FromBits>
void check_all_midpoints(ToBits to_bits, FromBits from_bits, std::uint16_t max_finite_bits) {
    // Non-negative finite values in increasing bit order are increasing values.
    for (std::uint32_t b = 0; b < max_finite_bits; ++b) {
        const float lo = from_bits(static_cast<std::uint16_t>(b)), hi = from_bits(static_cast<std::uint16_t>(b + 1));
        ASSERT_LT(lo, hi);
        ASSERT_EQ(to_bits(lo), b) << "exact value " << lo;
        const double mid_d = (static_cast<double>(lo) + hi) / 2;
        const float mid = static_cast<float>(mid_d);
        ASSERT_EQ(static_cast<double>(mid), mid_d) << "midpoint not exact in float";
        const std::uint16_t even = (b % 2 == 0) ? static_cast<std::uint16_t>(b) : static_cast<std::uint16_t>(b + 1);
        ASSERT_EQ(to_bits(mid), even) << "tie at " << mid;
        ASSERT_EQ(to_bits(next_down(mid)), b) << "below tie at " << mid;
        ASSERT_EQ(to_bits(next_up(mid)), b + 1) << "above tie at " << mid;
        // Negative side mirrors.
        ASSERT_EQ(to_bits(-mid), static_cast<std::uint16_t>(even | 0x8000u));
    }
}

} // namespace

TEST(DType, Fp16RoundsToNearestEvenEverywhere) { check_all_midpoints(float_to_f16_bits, f16_bits_to_float, 0x7bff); }

TEST(DType, Bf16RoundsToNearestEvenEverywhere) { check_all_midpoints(float_to_bf16_bits, bf16_bits_to_float, 0x7f7f); }

TEST(DType, Fp16OverflowAndUnderflow) {
    EXPECT_EQ(round_to(DType::f16, 65504.0f), 65504.0f);
    EXPECT_EQ(round_to(DType::f16, 65519.99f), 65504.0f);
    EXPECT_TRUE(std::isinf(round_to(DType::f16, 65520.0f)));
    EXPECT_EQ(round_to(DType::f16, 0x1p-24f), 0x1p-24f); // smallest subnormal
    EXPECT_EQ(round_to(DType::f16, 0x1p-25f), 0.0f);     // tie to even (zero)
    EXPECT_EQ(round_to(DType::f16, 0x1.8p-25f), 0x1p-24f);
    EXPECT_TRUE(std::signbit(round_to(DType::f16, -0x1p-30f)));
    EXPECT_TRUE(std::isnan(round_to(DType::f16, NAN)));
    EXPECT_TRUE(std::isnan(round_to(DType::bf16, NAN)));
    EXPECT_TRUE(std::isinf(round_to(DType::bf16, 3.4e38f)));
    EXPECT_EQ(round_to(DType::bf16, static_cast<float>(max_finite(DType::bf16))),
              static_cast<float>(max_finite(DType::bf16)));
}

TEST(DType, UnitRoundoffMatchesFormat) {
    // 1 + 2u is the next representable after 1; 1 + u ties to 1.
    for (DType t : {DType::f16, DType::bf16}) {
        const float u = static_cast<float>(unit_roundoff(t));
        EXPECT_EQ(round_to(t, 1.0f + u), 1.0f) << dtype_name(t);
        EXPECT_EQ(round_to(t, 1.0f + 2 * u), 1.0f + 2 * u) << dtype_name(t);
        EXPECT_EQ(round_to(t, 1.0f + 1.5f * u), 1.0f + 2 * u) << dtype_name(t);
    }
}
