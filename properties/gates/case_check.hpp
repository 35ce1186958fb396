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
