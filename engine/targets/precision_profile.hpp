// A target's precision profile: where it rounds, in which format. The error
// model (oracle/error_model.hpp) turns it into a per-element bound; it lives
// here, beside the Target that declares it, because targets are judged by
// it and must not depend on the oracle that judges them.
#pragma once

#include "engine/case/dtype.hpp"

namespace attncheck {

// How a target rounds. A target that rounds more than it declares fails; one
// that rounds less passes.
struct PrecisionProfile {
    DType input = DType::f32;   // Q, K, V as read
    double u_acc = 0x1p-24;     // accumulation format (fp32)
    bool scores_stored = false; // S rounded to `store` before the softmax
    bool probs_stored = false;  // P rounded to `store` before P.V
    DType store = DType::f32;   // format of stored intermediates
    DType output = DType::f32;  // format of O
    double exp_ulps = 2.0;      // error of exp/exp2 in units of u_acc
    int kv_tile = 0;            // online-softmax tile length; 0 = one pass
    bool uses_splits = false;   // honours Case.num_splits (split-KV merge)
};

} // namespace attncheck
