#include <gtest/gtest.h>

#include <cmath>

#include "engine/case/rng.hpp"

using namespace attncheck;

TEST(Rng, SameSeedSameStream) {
    Rng a(42), b(42), c(43);
    bool differs = false;
    for (int i = 0; i < 1000; ++i) {
        const auto x = a.next();
        ASSERT_EQ(x, b.next());
        differs = differs || x != c.next();
    }
    EXPECT_TRUE(differs);
}

TEST(Rng, NormalHasUnitMomentsAndBoundedSupport) {
    Rng r(7);
    const int n = 200000;
    double s = 0, s2 = 0, mx = 0;
    for (int i = 0; i < n; ++i) {
        const double x = r.normal();
        s += x;
        s2 += x * x;
        mx = std::max(mx, std::fabs(x));
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    EXPECT_NEAR(mean, 0.0, 0.02); // 5 sigma of the sample mean is ~0.011
    EXPECT_NEAR(var, 1.0, 0.02);
    EXPECT_LE(mx, 6.0);
    EXPECT_GT(mx, 3.5); // tails exist
}

TEST(Rng, UniformAndRangeCoverTheirSupport) {
    Rng r(9);
    int hist[7] = {0};
    for (int i = 0; i < 70000; ++i) {
        const long long k = r.range(-3, 3);
        ASSERT_GE(k, -3);
        ASSERT_LE(k, 3);
        ++hist[k + 3];
        const double u = r.uniform01();
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
    }
    for (int h : hist) EXPECT_NEAR(h, 10000, 500);
}

TEST(Rng, ForksAreIndependentOfEachOther) {
    Rng root(5);
    Rng a = root.fork(1), b = root.fork(2), a2 = root.fork(1);
    EXPECT_EQ(a.next(), a2.next());
    EXPECT_NE(a.next(), b.next());
}
