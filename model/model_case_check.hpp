// The model's gates over one model case (model/model_case.hpp), run on a
// fresh engine:
//   - stages: every call of the schedule is traced and judged stage by stage
//     against the fp64 oracle under the observed bound; the first (layer,
//     stage) out of its bound names the bug's place;
//   - decode_prefill: at the end, each slot's history is prefilled in one
//     shot on a spare slot, and every row the schedule computed for that
//     slot since its last reset (decode steps, chunks, ragged batches) must
//     agree with the one-shot row within the sum of both calls' bounds.
// A configuration or schedule the engine refuses (ModelError) is reported as
// such, not as a failed gate.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "model/model_case.hpp"
#include "model/model_mutant.hpp"
#include "model/model_trace.hpp"

namespace attncheck {

struct ModelVerdict {
    bool ok = true;
    bool skipped = false; // an external model refused the case (summary says why)
    std::string gate;     // "stages", "decode_prefill", "families" or (external models) "logits" when !ok
    std::string summary;  // one paragraph
    int step = -1;        // schedule step the failure shows at
    int layer = -1;       // stages: where the divergence report points
    std::string stage;
    std::string table; // stages: the per-layer table
    long long calls = 0, rows_compared = 0, family_pairs = 0;
    // Per stage, the largest error / bound over every call and layer checked
    // (fuzzers steer toward it: fuzz/fuzz_model_step.cpp).
    std::array<double, kStages> stage_worst{};
};

ModelVerdict check_model_case(const ModelCase& c, Backend b, ModelMutant m = ModelMutant::none);

} // namespace attncheck
