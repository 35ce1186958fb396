#include "oracle/gpu/oracle_gpu_sweep.hpp"

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <chrono>

#include <fmt/format.h>

#include "engine/case/case_sampler.hpp"
#include "engine/case/problem.hpp"
#include "oracle/gpu/oracle_gpu.hpp"
#include "oracle/oracle_crosscheck.hpp"
#include "oracle/selfcheck.hpp"

namespace attncheck {

GpuOracleSweep sweep_gpu_oracle(std::uint64_t first_seed, long long n_cases, int mp_every) {
    using clock = std::chrono::steady_clock;
    using mp50 = boost::multiprecision::cpp_bin_float_50;
    auto secs = [](clock::time_point a) { return std::chrono::duration<double>(clock::now() - a).count(); };
    GpuOracleSweep sw;
    for (long long i = 0; i < n_cases; ++i) {
        const std::uint64_t seed = first_seed + static_cast<std::uint64_t>(i);
        const Case c = sample_wide_case(seed);
        const AttentionProblem p = materialize(c);
        // Two profiles: plain fp32 arithmetic, and S, P, O stored in the
        // input dtype with online tiles and split merges (every term of the
        // bound in play).
        PrecisionProfile plain;
        plain.input = c.dtype;
        PrecisionProfile storing = plain;
        storing.scores_stored = storing.probs_stored = true;
        storing.store = storing.output = c.dtype;
        storing.kv_tile = 64;
        storing.uses_splits = true;
        for (const PrecisionProfile& f : {plain, storing}) {
            auto t0 = clock::now();
            const OracleRun g = gpu_oracle(p, f);
            sw.seconds_gpu += secs(t0);
            t0 = clock::now();
            const ReferenceOutput href = reference_attention<double>(p);
            const ProblemBounds hb = bound_problem(p, f);
            sw.seconds_host += secs(t0);
            const std::string why = compare_oracles(p, href, hb, g.ref, g.bounds);
            if (!why.empty() && sw.disagreements++ == 0)
                sw.first_disagreement = fmt::format("seed {}: {}\n{}", seed, why, case_to_json(c, -1));
        }
        ++sw.cases;
        sw.rows += p.total_q() * p.n_q_heads;
        // Multiprecision on well-conditioned cases: on wide ones fp64 itself
        // is not 1e-12 from the exact answer (a logit of 1e9 carries an
        // absolute error of 1e-7), whichever device computes it.
        if (mp_every > 0 && i % mp_every == 0) {
            const AttentionProblem w = materialize(sample_well_conditioned_case(seed));
            const OracleRun g = gpu_oracle(w, PrecisionProfile{});
            sw.max_rel_mp = std::max(sw.max_rel_mp, max_rel(w, g.ref, reference_attention<mp50>(w)));
            ++sw.mp_cases;
        }
    }
    return sw;
}

} // namespace attncheck
