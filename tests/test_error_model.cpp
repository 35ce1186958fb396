// The error model, tested both ways: correct computations never leave the
// bound (over 10,000 random cases spanning dtypes, lengths and magnitudes up
// to each dtype's edge), and wrong ones do.
#include <gtest/gtest.h>

#include <cstdio>

#include "oracle/error_model.hpp"
#include "oracle/selfcheck.hpp"

using namespace attncheck;

TEST(ErrorModel, GammaIsHighams) {
    EXPECT_DOUBLE_EQ(gamma_n(10, 0x1p-24), 10 * 0x1p-24 / (1 - 10 * 0x1p-24));
    EXPECT_TRUE(std::isinf(gamma_n(1 << 25, 0x1p-24)));
}

TEST(ErrorModel, NoFalseAlarmsOver10000RandomCases) {
    const long long n = 10000;
    const ErrorModelSweep s = sweep_error_model(20261122, n);
    ASSERT_EQ(s.cases, n);
    for (const auto& t : s.correct) {
        std::printf(
            "%-34s cases %lld, rows judged %lld, rows out of range %lld, false alarms %lld, worst err/bound %.3g, "
            "median %.3g\n",
            t.profile.c_str(), t.cases, t.rows_judged, t.rows_out_of_range, t.false_alarms, t.worst_ratio,
            t.median_ratio);
        EXPECT_EQ(t.false_alarms, 0) << t.profile << ": first at seed " << t.first_alarm_seed << "\n"
                                     << t.first_alarm_detail;
        EXPECT_LE(t.worst_ratio, 1.0);
        // The sweep must really judge most of its rows: out-of-range is for
        // the extremes, not the common case.
        EXPECT_GT(t.rows_judged, 10 * t.rows_out_of_range) << t.profile;
    }
    // The storing profile meets cases it cannot judge (large logits in fp16).
    EXPECT_GT(s.correct[1].rows_out_of_range, 0);
    std::printf("FlashAttention-style check: %lld of %lld held\n", s.relative_checked - s.relative_failures,
                s.relative_checked);
    EXPECT_GT(s.relative_checked, n / 3);
    EXPECT_EQ(s.relative_failures, 0);
}

TEST(ErrorModel, WrongComputationsLandOutside) {
    const DetectionSweep s = sweep_defect_detection(99, 1000);
    std::printf("scale +1%%: %lld/%lld caught; dropped key: %lld/%lld caught; FA-style check: %lld/%lld\n",
                s.scale_caught, s.scale_judged, s.drop_caught, s.drop_judged, s.relative_scale_caught, s.cases);
    EXPECT_EQ(s.scale_caught, s.scale_judged) << s.first_missed_detail;
    EXPECT_GT(s.drop_judged, s.cases / 2);
    EXPECT_EQ(s.drop_caught, s.drop_judged) << s.first_missed_detail;
    // The relative check is the weaker, secondary one (its allowance is
    // 2x the naive fp16 error, itself large); it must still catch nearly all.
    EXPECT_GE(s.relative_scale_caught, s.cases * 99 / 100);
}

// Large logits in fp16 storage must be reported as out of range, not passed.
TEST(ErrorModel, Fp16ScoresOfHugeLogitsAreOutOfRange) {
    Case c;
    c.dtype = DType::f16;
    c.head_dim = 64;
    c.q_lens = {2};
    c.kv_lens = {16};
    c.data.seed = 1;
    c.data.q_scale = 30;
    c.data.k_scale = 30;
    const AttentionProblem p = materialize(c);
    PrecisionProfile storing;
    storing.input = storing.store = storing.output = DType::f16;
    storing.scores_stored = storing.probs_stored = true;
    const RowBound rb = bound_row(p, 0, 0, 0, storing);
    EXPECT_FALSE(rb.meaningful) << "rho_p " << rb.rho_p;
    PrecisionProfile plain;
    plain.input = DType::f16;
    EXPECT_TRUE(bound_row(p, 0, 0, 0, plain).meaningful);
}
