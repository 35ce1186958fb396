// The gate functions, one file each under properties/gates/ (gate_<name>.cpp).
// The registry (properties/gate_registry.cpp) names them and fixes their order.
#pragma once

#include "properties/gate.hpp"

namespace attncheck::gates {

GateVerdict effective_scale(GateContext&);
GateVerdict causal(GateContext&);
GateVerdict fully_masked(GateContext&);
GateVerdict row_max(GateContext&);
GateVerdict gqa(GateContext&);
GateVerdict q_completeness(GateContext&);
GateVerdict normalization(GateContext&);
GateVerdict shift_invariance(GateContext&);
GateVerdict split_invariance(GateContext&);
GateVerdict decode_prefill(GateContext&);
GateVerdict batch_invariance(GateContext&);
GateVerdict padding_nan(GateContext&);
GateVerdict determinism(GateContext&);
GateVerdict parity(GateContext&);

}  // namespace attncheck::gates
