// Row comparisons the metamorphic gates build on: bitwise for promises of
// determinism, by value for what a row computes (the causal gate).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "properties/gates/gate_util.hpp"

using namespace attncheck;

namespace {

struct TwoRows {
    AttentionProblem p;
    Observation a, b;
    TwoRows() {
        p.head_dim = 2;
        p.q_lens = {1};
        p.kv_lens = {1};
        p.q_start = {0};
        p.kv_start = {0};
        a.o = {0.0f, 1.5f};
        a.lse = {0.25f};
        b = a;
    }
    bool same() const { return rows_same_values(p, a, {0, 0, 0}, p, b, {0, 0, 0}); }
    bool bitwise() const { return rows_bitwise_equal(p, a, {0, 0, 0}, p, b, {0, 0, 0}); }
};

} // namespace

TEST(RowComparison, SignedZerosAreTheSameValueButNotTheSameBits) {
    TwoRows r;
    r.b.o[0] = -0.0f; // what p = 0 times a negative masked V leaves behind
    EXPECT_TRUE(r.same());
    EXPECT_FALSE(r.bitwise());
}

TEST(RowComparison, AnyOtherChangeIsSeenByBoth) {
    TwoRows r;
    r.b.o[1] = std::nextafter(1.5f, 2.0f);
    EXPECT_FALSE(r.same());
    EXPECT_FALSE(r.bitwise());
    TwoRows l;
    l.b.lse[0] = 0.5f;
    EXPECT_FALSE(l.same());
    TwoRows n;
    n.b.o[1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_FALSE(n.same()) << "a NaN where a number was is a change";
    n.a.o[1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_TRUE(n.same()) << "NaN on both sides is the same (non-)value";
}
