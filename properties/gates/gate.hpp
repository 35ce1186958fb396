// A gate is one named invariant from ../shared/bug-classes.md, checked on one
// (target, case). It returns pass, fail (with the numbers that decided it and
// the row where it failed worst) or skip (the case cannot exercise it, and
// why). Metamorphic gates run the target again on a transformed problem
// through the GateContext, which also caches the base run and the oracle so
// that a dozen gates on one case cost one oracle evaluation.
//
// Gates never throw for a target's failure: a target that throws (guard
// band overwritten, CUDA error, NaN where it must not be) fails the gate
// that was running, with the message as its evidence.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/observation.hpp"
#include "engine/targets/target.hpp"
#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"
#include "properties/gates/oracle_service.hpp"

namespace attncheck {

enum class GateStatus { pass, fail, skip };

// Error / bound on a log2 scale, for run reports' histograms and fuzzers'
// feedback: bucket b holds ratios in [2^(b - kRatioShift), 2^(b + 1 -
// kRatioShift)), the first and last also everything below and above;
// buckets from kRatioShift on are at or past the bound.
inline constexpr int kRatioBuckets = 16;
inline constexpr int kRatioShift = 12;
// -1 for no ratio (negative or NaN); 0 (an exact result) lands in the
// first bucket, +inf in the last.
int ratio_bucket(double ratio);
const char* gate_status_name(GateStatus s);

struct GateVerdict {
    GateStatus status = GateStatus::pass;
    std::string summary;              // one line: the numbers that decided it
    std::vector<std::string> details; // further lines for the report
    std::optional<ProbeRequest> row;  // on fail: the row to diagnose stage by stage
    // The largest error / bound the gate compared against the error model
    // (fuzzers steer toward it, fuzz/fuzz_attention_cases.cpp; reports draw
    // it): parity, q_completeness and the gates that compare two runs under
    // the sum of their bounds (agreement_verdict) set it; -1: none.
    double ratio = -1;

    static GateVerdict pass(std::string s, double ratio = -1) {
        GateVerdict v{GateStatus::pass, std::move(s), {}, {}};
        v.ratio = ratio;
        return v;
    }
    static GateVerdict skip(std::string s) { return {GateStatus::skip, std::move(s), {}, {}}; }
    static GateVerdict fail(std::string s, std::optional<ProbeRequest> row = std::nullopt) {
        return {GateStatus::fail, std::move(s), {}, row};
    }
};

// Thrown by a batched GateContext (below) when a gate needs a run that no
// batch has answered yet. Not a std::exception, so neither a gate nor
// check_case mistakes it for the target's failure.
struct RunDeferred {};

class GateContext {
public:
    GateContext(Target& target, const Case& c);

    Target& target() { return target_; }
    const Case& kase() const { return case_; }
    const AttentionProblem& problem() const { return problem_; }
    const PrecisionProfile& profile() const { return profile_; }

    // The target on the case itself, and the fp64 oracle of the case and
    // the error model's bounds for it under the target's profile (cached).
    const Observation& base();
    const ReferenceOutput& reference();
    const ProblemBounds& bounds();
    // The bounds of a transformed problem under the target's profile for it.
    ProblemBounds bounds_of(const AttentionProblem& p);

    // The target on a transformed problem (throws UnsupportedCase when the
    // target cannot run it: callers ask supports() first).
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe = std::nullopt);
    bool supports(const AttentionProblem& p) const;
    std::string unsupported(const AttentionProblem& p) const;
    PrecisionProfile profile_of(const AttentionProblem& p) const;
    int runs() const { return runs_; }

    // Batched checking (check_cases): the context answers runs from what
    // earlier batches brought back, and a run it cannot answer yet is
    // queued and stops the gate (RunDeferred). A gate is a deterministic
    // function of the case and its answers, so replayed from the start it
    // asks for the same runs in the same order: the k-th run of gate g is
    // answer (g, k). The base run is shared by all gates; bounds of
    // transformed problems are kept the same way, so a replay does not
    // repeat the oracle's work.
    struct RunKey {
        int gate, ordinal; // gate -1: the base run
        bool operator<(const RunKey& o) const { return gate != o.gate ? gate < o.gate : ordinal < o.ordinal; }
        bool operator==(const RunKey& o) const { return gate == o.gate && ordinal == o.ordinal; }
    };
    struct PendingRun {
        RunKey key;
        AttentionProblem problem;
        std::optional<ProbeRequest> probe;
    };
    void set_batched() { batched_ = true; }
    void begin_gate(int gate);                   // before each (re)play of gate
    std::vector<PendingRun> take_pending();      // the runs asked for since the last call
    void answer(const RunKey& key, RunAnswer a); // what the target said to one of them

private:
    Observation answer_or_defer(const RunKey& key, const AttentionProblem& p, const std::optional<ProbeRequest>& probe);

    Target& target_;
    Case case_;
    AttentionProblem problem_;
    PrecisionProfile profile_;
    std::optional<Observation> base_;
    OracleDevice oracle_;
    std::optional<ReferenceOutput> reference_;
    std::optional<ProblemBounds> bounds_;
    int runs_ = 0;
    bool batched_ = false;
    int gate_ = 0, run_ordinal_ = 0, bounds_ordinal_ = 0;
    std::map<RunKey, RunAnswer> answers_;
    std::map<RunKey, ProblemBounds> bounds_kept_;
    std::vector<PendingRun> pending_;
};

struct Gate {
    const char* name;      // e.g. "causal"
    const char* invariant; // what must hold, one line
    const char* catches;   // the bug classes it exists for
    GateVerdict (*check)(GateContext&);
};

// Every gate, in the order of ATTNCHECK_GATES (properties/gates/gates.hpp).
const std::vector<Gate>& all_gates();
const Gate* find_gate(std::string_view name);

} // namespace attncheck
