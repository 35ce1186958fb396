// A Target runs a Case: an engine kernel variant on the CPU or on CUDA (or,
// later, the whole model or an external implementation). It declares what it
// supports and rejects anything else with a reason -- it never computes an
// unsupported case wrongly -- and it declares the precision profile the
// error model judges it by.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/mutant.hpp"
#include "engine/targets/observation.hpp"
#include "engine/targets/precision_profile.hpp"

namespace attncheck {

enum class Backend { cpu, cuda };
inline const char* backend_name(Backend b) { return b == Backend::cpu ? "cpu" : "cuda"; }

// Thrown by run() for a case the target does not support (callers should ask
// unsupported() first; this is the safety net).
struct UnsupportedCase : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One run of a batch (Target::run_batch) and what came of it: an
// observation, or the reason the target refused it (unsupported), or the
// error it reported.
struct RunRequest {
    const AttentionProblem* problem = nullptr;
    std::optional<ProbeRequest> probe;
};
struct RunAnswer {
    std::optional<Observation> obs;
    std::string unsupported, error; // one of these is set when obs is not
};

class Target {
public:
    virtual ~Target() = default;
    virtual std::string name() const = 0; // e.g. "decode_gqa"
    virtual Backend backend() const = 0;
    virtual Mutant mutant() const = 0;
    virtual std::string description() const = 0;
    // Empty when the case is supported; otherwise the reason it is not.
    virtual std::string unsupported(const Case& c) const = 0;
    virtual PrecisionProfile profile(const Case& c) const = 0;
    virtual Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe = std::nullopt) = 0;
    // Does the target promise bitwise batch invariance: the same sequence
    // gives the same bits wherever it sits in a batch and whoever its
    // neighbours are (deterministic serving)? A target that does not is
    // still judged under the error model, and reported as "not batch
    // invariant" rather than passing the bitwise property.
    virtual bool promises_batch_invariance() const { return false; }
    // Does run() fill Observation::probe when asked (the stages of one row:
    // scores, max, exponentials, P)? The engine's families do, and a missing
    // trace from them is a failure. A target that does not (most outside
    // kernels) has the probed parts of the causal, row_max, normalization and
    // q_completeness gates skipped, said so in their verdicts, and its stage
    // reports say the same.
    virtual bool records_probes() const { return false; }
    // Does run() read K and V through a paged KV cache's block table when
    // the problem has page_size > 0 (engine/case/paged_kv.hpp)? Only then do
    // campaigns draw paged cases for it and the paging gate judge it; a
    // target that does not reads the logical K and V, which are the same
    // values.
    virtual bool reads_paged_kv() const { return false; }
    // How many runs the target takes at once. Above 1 (an external adapter,
    // one message a batch), a campaign checks that many cases together
    // (check_cases, properties/gates/case_check.hpp) and hands the target
    // every run they need in run_batch calls; at 1 it checks case by case.
    virtual int batch_size() const { return 1; }
    // The runs in order, at most batch_size() of them; by default one run()
    // after another. An answer never throws: a refusal or error is in it.
    virtual std::vector<RunAnswer> run_batch(const std::vector<RunRequest>& runs);
    std::string full_name() const; // "cuda/decode_gqa" or "cpu/flash_prefill+no_row_max"
};

} // namespace attncheck
