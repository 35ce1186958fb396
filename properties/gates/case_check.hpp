// One case against one target: run the gates in order, stop at the first
// that fails (or run them all, for a report), and for a failure name the
// first stage of the failing row that left the error model (stage_report).
#pragma once

#include <string>
#include <vector>

#include "properties/gates/gate.hpp"

namespace attncheck {

struct GateOutcome {
    const Gate* gate;
    GateVerdict verdict;
    double seconds = 0;
};

struct CaseCheck {
    std::vector<GateOutcome> outcomes; // in gate order, up to the first failure
    const GateOutcome* failure() const;
};

// Gates that throw (the target threw: guard band, CUDA error, bad shape)
// fail with the exception's message.
CaseCheck check_case(Target& target, const Case& c, const std::vector<const Gate*>& gates, bool stop_at_first = true);

// The same checks for several cases at once, for a target that takes its
// runs in batches (Target::batch_size() > 1): every gate of every case plays
// until it needs a run no batch has answered, all such runs go to the
// target together (run_batch, batch_size() at a time), and the gates replay
// with the answers until each has its verdict (GateContext's batched mode).
// The verdicts are check_case's. With stop_at_first, the outcomes after a
// case's first failure are dropped, as check_case would not have run them:
// their runs were made for nothing, the price of batching a rare event.
std::vector<CaseCheck> check_cases(Target& target, const std::vector<Case>& cases,
                                   const std::vector<const Gate*>& gates, bool stop_at_first = true);

// Stage by stage, the probed row against the oracle: raw scores, scaled,
// masked, row max, exponentials, row sum, P, O, each with its largest error
// and bound, and the first stage outside its bound. The stage bounds come
// from the same row bound as parity (oracle/error_model.hpp); they only pick
// the stage to name, the verdict is the gate's.
std::string stage_report(Target& target, const AttentionProblem& p, const PrecisionProfile& prof, ProbeRequest row);

// The full text report of a failed check: gate, numbers, stage report.
std::string failure_report(Target& target, const Case& c, const GateOutcome& failed);

std::vector<const Gate*> gate_pointers(const std::vector<std::string>& names); // empty: all

} // namespace attncheck
