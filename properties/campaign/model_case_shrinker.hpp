// A greedy shrinker for failing model cases (model/model_case.hpp) that
// RapidCheck did not draw: libFuzzer findings (fuzz/fuzz_model_step.cpp),
// hand-written or edited case files. The model campaign's own failures are
// shrunk by RapidCheck through their draws (model_campaign.hpp).
//
// A fixed table of named reductions, most drastic first: the schedule
// (fewer steps, slots, chunks, tokens), the depth and widths of the
// configuration, then per-call options back to "auto" and one split, the
// weight outliers off, and numerics details back to their defaults; the walk
// over it is the attention shrinker's (greedy_shrink.hpp). A candidate is
// kept only when it passes validate(ModelCase) and still fails. Limits:
// greedy, so 1-minimal with respect to the table, not globally smallest; the
// dtype, the architecture and tied embeddings are never changed; a step the
// engine refuses (say, a decode family on a slot whose earlier prompt was
// dropped) is simply not kept, so the walk never sees past it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "properties/campaign/greedy_shrink.hpp"
#include "properties/campaign/model_campaign.hpp"

namespace attncheck {

struct ModelShrinkOptions {
    // Calls of the still-fails predicate; each runs the whole case with its
    // fp64 oracle, so well under the attention shrinker's 300.
    int max_evaluations = 200;
};

// The names of the reductions, in the order they are tried.
std::vector<std::string> model_shrink_reduction_names();

// The smallest case the greedy walk reaches from c (c itself when nothing
// smaller fails). c is assumed to fail; still_fails is called only on valid
// candidates. *stats, when given, is reset and filled (ShrinkStep::shape is
// model_case_summary).
ModelCase shrink_model_case(const ModelCase& c, const std::function<bool(const ModelCase&)>& still_fails,
                            const ModelShrinkOptions& opt = {}, ShrinkStats* stats = nullptr);

// Shrinks c while check_model_case(candidate, b, m) fails gate `gate` (a
// candidate the engine refuses does not fail), and returns the shrunk case
// with its verdict and shrink_steps (file left empty: the caller saves it).
// Throws std::invalid_argument when c itself does not fail that gate.
ModelFailure shrink_model_failure(const ModelCase& c, Backend b, ModelMutant m, const std::string& gate,
                                  const ModelShrinkOptions& opt = {}, ShrinkStats* stats = nullptr);

} // namespace attncheck
