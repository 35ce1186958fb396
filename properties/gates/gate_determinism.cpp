// Gate "determinism": the same inputs give the same bits on a rerun (bug
// class 10: races and missing barriers show as run-to-run differences long
// before they show as wrong answers). Guard bands around every buffer are
// checked by the target after each run; an overwrite throws and fails the
// gate that was running.
#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict determinism(GateContext& ctx) {
    const Observation& a = ctx.base();
    constexpr int kReruns = 2;
    for (int r = 0; r < kReruns; ++r) {
        const Observation b = ctx.run(ctx.problem());
        if (auto diff = first_bit_difference(ctx.problem(), a, b))
            return GateVerdict::fail(fmt::format("rerun {} changed {}", r + 1, diff->where), diff->row);
    }
    return GateVerdict::pass(
        fmt::format("{} reruns bitwise equal ({} O elements), guard bands intact", kReruns, a.o.size()));
}

} // namespace attncheck::gates
