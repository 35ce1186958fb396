// Where a gate's oracle runs. The reference and the bounds of every run a
// gate compares come from here: on the host (bound_row, reference_attention)
// for CPU targets and in CI, on the GPU (oracle/gpu/oracle_gpu.hpp) for CUDA
// targets, where the host's fp64 passes would otherwise cap the suite's
// speed.
//
// The GPU oracle is trusted only as far as it is checked: on the first
// evaluation on every thread and every kCrossCheckEvery-th after it,
// kCrossCheckRows rows spread over the problem are recomputed on the host
// (a whole problem on the host costs as much as the 64 GPU evaluations it
// would check), and a disagreement (oracle/oracle_crosscheck.hpp)
// throws OracleDisagreement, which stops the campaign with its report
// instead of being taken for a target's failure.
#pragma once

#include <stdexcept>
#include <string>

#include "engine/case/problem.hpp"
#include "engine/targets/precision_profile.hpp"
#include "engine/targets/target.hpp"
#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

enum class OracleDevice { host, gpu };

// The user's choice (`--oracle`): auto (GPU for CUDA targets when this build
// has CUDA), host, or gpu (an error where there is no GPU oracle).
enum class OraclePreference { automatic, host, gpu };
void set_oracle_preference(OraclePreference p);
OraclePreference parse_oracle_preference(const std::string& s); // throws std::invalid_argument

OracleDevice oracle_device_for(const Target& t);

// A problem whose fp64 work (sum of q_len * kv_len * n_q_heads * head_dim)
// is below this is judged on the host even for CUDA targets: its GPU
// evaluation would cost an upload, a launch, a copy back and a wait on a
// context every worker thread contends for, more than the host's passes.
// ATTNCHECK_HOST_ORACLE_BELOW=W overrides it (0: every evaluation on the
// GPU); bench/results/2026-12-01-h200-oracle-split/ has the measurement:
// on the H200 with 16 threads, 10^6 checked 550 cases/s, against 497 with
// every evaluation on the GPU and 440 with every one on the host.
inline constexpr long long kHostOracleBelow = 1000000;
// In an interleaved check (engine/fiber/interleave.hpp) a GPU evaluation
// waits with the other cases' runs and checks its guard bands in their
// release: it costs an upload, a launch and a copy, and every evaluation
// goes to the GPU (under MPS, 16 processes interleaving 16 cases each
// checked 460 cases/s so, 394 with small problems on the host:
// bench/results/2026-12-02-h200-interleave/).
inline constexpr long long kHostOracleBelowInterleaved = 0;

inline constexpr long long kCrossCheckEvery = 64;
inline constexpr int kCrossCheckRows = 8;

struct OracleDisagreement : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct OracleResult {
    ReferenceOutput ref; // empty unless asked for
    ProblemBounds bounds;
};

// The bounds of p under f, and its reference when want_reference.
OracleResult evaluate_oracle(OracleDevice dev, const AttentionProblem& p, const PrecisionProfile& f,
                             bool want_reference);

// GPU evaluations cross-checked so far on this thread, and how many of them.
struct CrossCheckCount {
    long long gpu_evaluations = 0, cross_checked = 0;
};
CrossCheckCount thread_cross_checks();

} // namespace attncheck
