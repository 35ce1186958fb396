#include "properties/gates/oracle_service.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include <fmt/format.h>

#include "engine/case/case.hpp"
#include "engine/fiber/interleave.hpp"
#include "engine/timing/phase_timer.hpp"
#include "oracle/oracle_crosscheck.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "oracle/gpu/oracle_gpu.hpp"
#endif

namespace attncheck {

namespace {

std::atomic<OraclePreference> g_preference{OraclePreference::automatic};
thread_local CrossCheckCount t_checks;

// sum over sequences of q_len * kv_len * n_q_heads * head_dim: the fp64
// passes' work.
long long problem_work(const AttentionProblem& p) {
    long long w = 0;
    for (int s = 0; s < p.batch(); ++s)
        w += static_cast<long long>(std::max(p.q_lens[s], 1)) * std::max(p.kv_lens[s], 1) * p.n_q_heads * p.head_dim;
    return w;
}

long long host_oracle_below() {
    static const long long v = [] {
        const char* e = std::getenv("ATTNCHECK_HOST_ORACLE_BELOW");
        if (!e || !*e) return -1LL;
        char* end = nullptr;
        const long long x = std::strtoll(e, &end, 10);
        if (*end != '\0' || x < 0)
            throw std::invalid_argument(fmt::format("ATTNCHECK_HOST_ORACLE_BELOW: '{}' is not a work count >= 0", e));
        return x;
    }();
    if (v >= 0) return v;
    return fiber_slot() > 0 ? kHostOracleBelowInterleaved : kHostOracleBelow;
}

OracleResult on_host(const AttentionProblem& p, const PrecisionProfile& f, bool want_reference) {
    OracleResult r;
    if (want_reference) r.ref = reference_attention<double>(p);
    r.bounds = bound_problem(p, f);
    return r;
}

} // namespace

void set_oracle_preference(OraclePreference p) { g_preference = p; }

OraclePreference parse_oracle_preference(const std::string& s) {
    if (s == "auto") return OraclePreference::automatic;
    if (s == "host" || s == "cpu") return OraclePreference::host;
    if (s == "gpu") {
#ifndef ATTNCHECK_HAVE_CUDA
        throw std::invalid_argument("--oracle gpu: this build has no CUDA backend");
#endif
        return OraclePreference::gpu;
    }
    throw std::invalid_argument(fmt::format("--oracle: '{}' is not auto, host or gpu", s));
}

OracleDevice oracle_device_for(const Target& t) {
#ifdef ATTNCHECK_HAVE_CUDA
    switch (g_preference.load()) {
        case OraclePreference::host:
            return OracleDevice::host;
        case OraclePreference::gpu:
            return OracleDevice::gpu;
        case OraclePreference::automatic:
            return t.backend() == Backend::cuda ? OracleDevice::gpu : OracleDevice::host;
    }
#endif
    (void)t;
    return OracleDevice::host;
}

OracleResult evaluate_oracle(OracleDevice dev, const AttentionProblem& p, const PrecisionProfile& f,
                             bool want_reference) {
    ScopedPhase phase(Phase::oracle);
#ifdef ATTNCHECK_HAVE_CUDA
    bool fits = true;
    for (int n : p.kv_lens) fits = fits && n <= kGpuOracleMaxKeys;
    if (dev == OracleDevice::gpu && fits && problem_work(p) >= host_oracle_below()) {
        OracleRun g = gpu_oracle(p, f);
        if (t_checks.gpu_evaluations++ % kCrossCheckEvery == 0) {
            ++t_checks.cross_checked;
            const std::string why = compare_with_host_rows(p, f, g.ref, g.bounds, kCrossCheckRows);
            if (!why.empty())
                throw OracleDisagreement(
                    fmt::format("the GPU oracle disagrees with the host oracle on a problem shaped {}: {}",
                                case_to_json(shape_of(p), -1), why));
        }
        OracleResult r;
        if (want_reference) r.ref = std::move(g.ref);
        r.bounds = std::move(g.bounds);
        return r;
    }
#endif
    (void)dev;
    return on_host(p, f, want_reference);
}

CrossCheckCount thread_cross_checks() { return t_checks; }

} // namespace attncheck
