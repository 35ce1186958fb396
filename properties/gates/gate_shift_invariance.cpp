// Gate "shift_invariance" (bug class 2: a finite mask sentinel such as -1e4
// or -5e4 instead of -inf). Softmax is invariant under adding a constant to
// all logits of a row. shifted_pair (gate_util.hpp) builds P0 and P1 whose
// logits differ by exactly -S in every row; the target's O on P1 must equal
// its O on P0 within the two runs' bounds, and its LSE must be lower by S.
// A finite sentinel above -S now outweighs every visible key of P1, and a
// row that sees some keys and masks others averages the masked values.
#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict shift_invariance(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    const auto sp = shifted_pair(p, -1);
    if (!sp)
        return GateVerdict::skip(
            fmt::format("no representable shift with scale {:.3g} in {}", p.scale, dtype_name(p.dtype)));
    const Observation o0 = ctx.run(sp->p0), o1 = ctx.run(sp->p1);
    GateVerdict v =
        agreement_verdict(fmt::format("every logit shifted by {:.6g}", sp->shift), sp->p0, o0, ctx.bounds_of(sp->p0),
                          sp->p1, o1, ctx.bounds_of(sp->p1), same_rows(), -sp->shift);
    if (v.status == GateStatus::fail) v.summary += " (softmax must not change: a finite mask sentinel?)";
    return v;
}

} // namespace attncheck::gates
