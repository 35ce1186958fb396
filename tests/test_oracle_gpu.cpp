// The GPU fp64 oracle (oracle/gpu/) against the host oracle and
// cpp_bin_float_50, and the cross-check that guards it in campaigns. The
// agreement tests need a device and skip without one; the cross-check's own
// tests run everywhere, so CI sees that it can fail.
#include <gtest/gtest.h>

#include "engine/case/case_sampler.hpp"
#include "engine/case/problem.hpp"
#include "oracle/error_model.hpp"
#include "oracle/oracle_crosscheck.hpp"
#include "oracle/reference_attention.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#include "oracle/gpu/oracle_gpu.hpp"
#include "oracle/gpu/oracle_gpu_sweep.hpp"
#endif

namespace attncheck {
namespace {

struct HostOracle {
    ReferenceOutput ref;
    ProblemBounds bounds;
};

HostOracle host_oracle(const AttentionProblem& p, const PrecisionProfile& f) {
    return {reference_attention<double>(p), bound_problem(p, f)};
}

TEST(OracleCrossCheck, AgreesWithItself) {
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        const AttentionProblem p = materialize(sample_wide_case(seed));
        const HostOracle h = host_oracle(p, PrecisionProfile{});
        EXPECT_EQ(compare_oracles(p, h.ref, h.bounds, h.ref, h.bounds), "") << "seed " << seed;
    }
}

TEST(OracleCrossCheck, CatchesAPerturbedOutputLseAndBound) {
    int caught_o = 0, caught_lse = 0, caught_bound = 0, tried = 0;
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        const AttentionProblem p = materialize(sample_well_conditioned_case(seed));
        const HostOracle h = host_oracle(p, PrecisionProfile{});
        if (h.ref.o.empty()) continue;
        ++tried;
        HostOracle bad = h;
        bad.ref.o[bad.ref.o.size() / 2] *= 1.0 + 1e-9; // far above 1e-12 of any row's scale
        bad.ref.o[bad.ref.o.size() / 2] += 1e-9;
        caught_o += !compare_oracles(p, h.ref, h.bounds, bad.ref, bad.bounds).empty();
        bad = h;
        bad.ref.lse[0] += 1e-9 * (1 + std::fabs(bad.ref.lse[0]));
        caught_lse += !compare_oracles(p, h.ref, h.bounds, bad.ref, bad.bounds).empty();
        bad = h;
        bad.bounds.o[0] *= 1.001;
        caught_bound += !compare_oracles(p, h.ref, h.bounds, bad.ref, bad.bounds).empty();
    }
    ASSERT_GT(tried, 10);
    EXPECT_EQ(caught_o, tried);
    EXPECT_EQ(caught_lse, tried);
    EXPECT_EQ(caught_bound, tried);
}

// The campaign's sampled check: the host recomputes a few rows only.
TEST(OracleCrossCheck, SampledRowsAgreeAndCatchAPerturbedRow) {
    int caught = 0, tried = 0;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        const AttentionProblem p = materialize(sample_wide_case(seed));
        const PrecisionProfile f;
        const HostOracle h = host_oracle(p, f);
        EXPECT_EQ(compare_with_host_rows(p, f, h.ref, h.bounds, 8), "") << "seed " << seed;
        // Perturb the first row (always among the sampled ones) where it is judged.
        if (h.bounds.rows.empty() || !h.bounds.rows[0].finite_input || h.bounds.rows[0].masked) continue;
        ++tried;
        HostOracle bad = h;
        bad.ref.lse[0] += 1e-9 * (1 + std::fabs(bad.ref.lse[0]));
        caught += !compare_with_host_rows(p, f, bad.ref, bad.bounds, 8).empty();
    }
    ASSERT_GT(tried, 10);
    EXPECT_EQ(caught, tried);
}

#ifdef ATTNCHECK_HAVE_CUDA
#define REQUIRE_DEVICE()                                         \
    do {                                                         \
        std::string why_;                                        \
        if (!cuda_device_available(&why_)) GTEST_SKIP() << why_; \
    } while (0)
#else
#define REQUIRE_DEVICE() GTEST_SKIP() << "CUDA backend not built (no nvcc at configure time)"
#endif

TEST(GpuOracle, AgreesWithHostAndMultiprecisionOnWideCases) {
    REQUIRE_DEVICE();
#ifdef ATTNCHECK_HAVE_CUDA
    const GpuOracleSweep sw = sweep_gpu_oracle(1000, 600, 10);
    EXPECT_EQ(sw.disagreements, 0) << sw.first_disagreement;
    EXPECT_LE(sw.max_rel_mp, kOracleAgreement);
    EXPECT_EQ(sw.cases, 600);
    EXPECT_GE(sw.mp_cases, 60);
    RecordProperty("rows", std::to_string(sw.rows));
#endif
}

TEST(GpuOracle, FullyMaskedEmptyAndLongRows) {
    REQUIRE_DEVICE();
#ifdef ATTNCHECK_HAVE_CUDA
    Case c;
    c.n_q_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.q_lens = {5, 0, 1, 3};
    c.kv_lens = {2, 7, 0, 5000}; // q_len > kv_len (masked rows), empty query, empty cache, long cache
    c.causal = true;
    c.data.seed = 7;
    const AttentionProblem p = materialize(c);
    const PrecisionProfile f;
    const OracleRun g = gpu_oracle(p, f);
    const HostOracle h = host_oracle(p, f);
    EXPECT_EQ(compare_oracles(p, h.ref, h.bounds, g.ref, g.bounds), "");
    int masked = 0;
    for (const RowTolerance& r : g.bounds.rows) masked += r.masked;
    EXPECT_GT(masked, 0);
#endif
}

TEST(GpuOracle, RejectsRowsLongerThanItsLimit) {
    REQUIRE_DEVICE();
#ifdef ATTNCHECK_HAVE_CUDA
    Case c;
    c.head_dim = 8;
    c.q_lens = {1};
    c.kv_lens = {kGpuOracleMaxKeys + 1};
    c.data.seed = 3;
    EXPECT_THROW(gpu_oracle(materialize(c), PrecisionProfile{}), std::invalid_argument);
#endif
}

} // namespace
} // namespace attncheck
