// The gates of an external model (external_model.hpp) over one model case.
// An adapter is a black box that returns logits, so the gates judge logits,
// under the a-priori bound of its declared precision (transformers' fp32
// forward, docs/model-error-model.md): rigorous for any implementation that
// rounds no more than declared, whatever its order of operations, caches or
// kernels.
//   - logits: each slot's history, prefilled in one shot on a spare slot
//     (no cache), against the fp64 oracle: a wrong architecture, RoPE,
//     bias, norm or head mapping shows here;
//   - decode_prefill: every row the schedule computed (prefill chunks,
//     decode steps, ragged batches, after resets) against the one-shot row
//     of the same position, within the sum of both bounds: a KV cache
//     written or read at the wrong place shows here and nowhere else.
// No layer or stage is named: the adapter reports none.
#pragma once

#include "model/model_case_check.hpp"
#include "properties/campaign/external_model.hpp"

namespace attncheck {

// `c` must already be restricted to the adapter (ModelAdapter::restrict).
// A case the adapter refuses comes back ok with `skipped` set and the reason
// as summary; a failing adapter (an error message, a dead process) fails the
// gate that was running.
ModelVerdict check_external_model_case(const ModelCase& c, ModelAdapter& adapter);

} // namespace attncheck
