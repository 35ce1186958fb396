// The oracle: closed forms, agreement of its two number types, agreement with
// the independently written tiled reference.
#include <gtest/gtest.h>

#include <boost/multiprecision/cpp_bin_float.hpp>

#include "oracle/reference_attention.hpp"
#include "oracle/selfcheck.hpp"
#include "oracle/tiled_reference.hpp"

using namespace attncheck;

TEST(Oracle, ClosedForms) {
    const auto results = oracle_closed_forms();
    ASSERT_GE(results.size(), 5u);
    for (const auto& r : results) EXPECT_TRUE(r.pass) << r.name << ": " << r.detail;
}

TEST(Oracle, DoubleAgreesWithMultiprecisionAndTiledReference) {
    const AgreementSweep s = sweep_reference_agreement(1000, 300, 3);
    std::printf("reference agreement: %lld cases, %lld rows; fp64 vs cpp_bin_float_50 %.3g, fp64 vs tiled %.3g\n",
                s.cases, s.rows, s.max_rel_mp, s.max_rel_tiled);
    EXPECT_LE(s.max_rel_mp, 1e-12) << "worst seed " << s.worst_mp_seed;
    EXPECT_LE(s.max_rel_tiled, 1e-12) << "worst seed " << s.worst_tiled_seed;
    EXPECT_GT(s.max_rel_tiled, 0.0) << "the two fp64 references should differ by rounding, not be the same code";
}

// The two references must also agree on the masking conventions at every
// alignment: q_len < kv_len, = and >, windows, empty rows and empty caches.
TEST(Oracle, MaskConventionsAgreeAcrossLengths) {
    for (int q_len : {0, 1, 2, 5, 9})
        for (int kv_len : {0, 1, 4, 9})
            for (int window : {0, 1, 3}) {
                Case c;
                c.head_dim = 3;
                c.q_lens = {q_len};
                c.kv_lens = {kv_len};
                c.causal = true;
                c.window = window;
                c.data.seed = 77;
                const AttentionProblem p = materialize(c);
                const ReferenceOutput a = reference_attention<double>(p), b = tiled_reference_attention(p, 2);
                for (size_t i = 0; i < a.lse.size(); ++i) {
                    const bool both_masked = a.lse[i] == -INFINITY && b.lse[i] == -INFINITY;
                    EXPECT_TRUE(both_masked || std::fabs(a.lse[i] - b.lse[i]) < 1e-12)
                        << "q_len " << q_len << " kv_len " << kv_len << " window " << window << " row " << i;
                }
                // Bottom-right: the last query row always sees the last key (when both exist).
                if (q_len > 0 && kv_len > 0) {
                    EXPECT_TRUE(oracle_key_visible(p, 0, q_len - 1, kv_len - 1));
                    if (kv_len > 1 && window != 1) {
                        EXPECT_TRUE(oracle_key_visible(p, 0, q_len - 1, kv_len - 2));
                    }
                }
            }
}

TEST(Oracle, ReferenceRowStagesAreConsistent) {
    Case c;
    c.n_q_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.q_lens = {3};
    c.kv_lens = {6};
    c.causal = true;
    c.data.seed = 5;
    const AttentionProblem p = materialize(c);
    const auto r = reference_row<double>(p, 0, 3, 0); // query 0 at position 3: keys 0..3
    EXPECT_EQ(r.n_visible, 4);
    double sum = 0, max_exp = 0;
    for (int j = 0; j < 6; ++j) {
        if (j > 3) {
            EXPECT_EQ(r.p[j], 0.0);
            EXPECT_EQ(r.masked[j], -INFINITY);
        }
        sum += r.p[j];
        max_exp = std::max(max_exp, r.exps[j]);
        EXPECT_DOUBLE_EQ(r.scaled[j], r.raw[j] * p.scale);
    }
    EXPECT_NEAR(sum, 1.0, 1e-15);
    EXPECT_EQ(max_exp, 1.0);
}
