// Gate "parity": O and LSE of every row against the fp64 oracle under the
// error model's bound for the target's precision profile (bug classes:
// anything that changes the numbers -- scale, mask, normalizer, accumulation
// precision, online-softmax rescale, split merge). Rows whose bound is not
// meaningful, or whose inputs are non-finite, are counted, never passed
// silently (see oracle/parity.hpp).
#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict parity(GateContext& ctx) {
    return parity_verdict("oracle parity", ctx.problem(), ctx.reference(), ctx.bounds(), ctx.base());
}

} // namespace attncheck::gates
