// A greedy shrinker for any failing Case, whatever produced it: a libFuzzer
// input, a hand-written case file, an adapter's report. RapidCheck can only
// shrink the cases it drew itself (through their recorded draws); this one
// works on the Case alone.
//
// It walks a fixed table of named reductions, most drastic first (fewer
// sequences, shorter lengths, fewer heads, a smaller head_dim, then features
// off, then data recipe details back to their defaults). A candidate is kept
// when it validates, the target supports it and it still fails; the walk
// over the table (properties/campaign/greedy_shrink.hpp, shared with the
// model case shrinker) repeats until a fixpoint or the evaluation budget.
// ShrinkStats and ShrinkStep come from there. Limits: greedy, so the result is
// 1-minimal with respect to the table, not globally smallest; the dtype is
// never changed (the failure class depends on it); a case with explicit
// values keeps its tensor sizes (only reductions that leave the shape alone
// are tried).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/greedy_shrink.hpp"

namespace attncheck {

struct ShrinkOptions {
    int max_evaluations = 300; // calls of the still-fails predicate
    // The target's unsupported(c).empty(); empty: every valid case.
    std::function<bool(const Case&)> supported;
};

// The names of the reductions, in the order they are tried.
std::vector<std::string> shrink_reduction_names();

// The smallest case the greedy walk reaches from c (c itself when nothing
// smaller fails). c is assumed to fail; still_fails is called only on
// candidates. *stats, when given, is reset and filled.
Case shrink_case(const Case& c, const std::function<bool(const Case&)>& still_fails, const ShrinkOptions& opt,
                 ShrinkStats* stats = nullptr);

// Shrinks c on t while its first failing gate (all gates, in run order) is
// gate_name, and returns the shrunk counterexample with its report,
// shrink_steps and shrink_trajectory. Throws std::invalid_argument when c
// does not fail gate_name first on t, or t does not support it. Without
// opt.supported, t's own unsupported() is used.
Counterexample shrink_counterexample(Target& t, const Case& c, const std::string& gate_name,
                                     const ShrinkOptions& opt = {}, ShrinkStats* stats = nullptr);

} // namespace attncheck
