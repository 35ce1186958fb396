// Gate "determinism": the same inputs give the same bits on a rerun (bug
// class 10: races and missing barriers show as run-to-run differences long
// before they show as wrong answers). Guard bands around every buffer are
// checked by the target after each run; an overwrite throws and fails the
// gate that was running.
#include <cstring>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict determinism(GateContext& ctx) {
    const Observation& a = ctx.base();
    constexpr int kReruns = 2;
    for (int r = 0; r < kReruns; ++r) {
        const Observation b = ctx.run(ctx.problem());
        for (size_t i = 0; i < a.o.size(); ++i)
            if (std::memcmp(&a.o[i], &b.o[i], sizeof(float)) != 0) {
                const ProbeRequest row = row_of_o_index(ctx.problem(), static_cast<long long>(i));
                return GateVerdict::fail(fmt::format("rerun {} changed O at {}, channel {}: {:.9g} then {:.9g}", r + 1,
                                                     row_name(row), i % ctx.problem().head_dim, a.o[i], b.o[i]),
                                         row);
            }
        for (size_t i = 0; i < a.lse.size(); ++i)
            if (std::memcmp(&a.lse[i], &b.lse[i], sizeof(float)) != 0) {
                const ProbeRequest row = row_of_lse_index(ctx.problem(), static_cast<long long>(i));
                return GateVerdict::fail(fmt::format("rerun {} changed LSE at {}: {:.9g} then {:.9g}", r + 1,
                                                     row_name(row), a.lse[i], b.lse[i]),
                                         row);
            }
    }
    return GateVerdict::pass(
        fmt::format("{} reruns bitwise equal ({} O elements), guard bands intact", kReruns, a.o.size()));
}

} // namespace attncheck::gates
