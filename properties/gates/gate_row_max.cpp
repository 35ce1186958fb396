// Gate "row_max" (row max / overflow, bug class 7): the softmax subtracts the
// row max before exponentiating, so
//  (a) every row with finite inputs and a visible key has finite O and LSE
//      (rows whose logits could exceed fp32's range are exempt: there an
//      fp32 accumulator legitimately overflows);
//  (b) the same holds when every logit is raised by S (about 16384 for head
//      dim 64, shifted_pair in gate_util.hpp): exp(s) without the max
//      overflows at s = 88.7;
//  (c) the largest exponential of a probed row is at most 1 -- exactly: the
//      row's max key gives exp(0) = 1 and exp is monotone (this is why the
//      kernels keep the scale product unfused from the subtraction).
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

namespace {

// The first row of `obs` with finite inputs, a visible key and a logit range
// inside fp32 whose O or LSE is not finite.
// (A row's logit reach, over every key, beyond 1e36 is not judged.)
std::optional<GateVerdict> first_nonfinite(const std::string& what, const AttentionProblem& p, const ProblemBounds& b,
                                           const Observation& obs, long long& rows) {
    for (int s = 0; s < p.batch(); ++s)
        for (int t = 0; t < p.q_lens[s]; ++t) {
            if (visible_keys(p, s, t) == 0) continue;
            for (int h = 0; h < p.n_q_heads; ++h) {
                const RowTolerance& rb = b.rows[static_cast<size_t>(p.lse_index(s, t, h))];
                if (rb.logit_reach > 1e36 || !rb.finite_input) continue;
                const long long oi = p.o_index(s, t, h);
                ++rows;
                const ProbeRequest r{s, h, t};
                const float lse = obs.lse[p.lse_index(s, t, h)];
                int bad = std::isfinite(lse) ? -1 : -2;
                for (int c = 0; c < p.head_dim && bad == -1; ++c)
                    if (!std::isfinite(obs.o[oi + c])) bad = c;
                if (bad != -1)
                    return GateVerdict::fail(
                        fmt::format("{}: {} has LSE {} and O[{}] = {} with finite inputs and {} visible "
                                    "keys",
                                    what, row_name(r), lse, std::max(bad, 0), obs.o[oi + std::max(bad, 0)],
                                    visible_keys(p, s, t)),
                        r);
            }
        }
    return std::nullopt;
}

} // namespace

GateVerdict row_max(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    long long rows = 0;
    if (auto f = first_nonfinite("the case", p, ctx.bounds(), ctx.base(), rows)) return *f;
    std::string shifted = "no representable upward shift";
    if (const auto sp = shifted_pair(p, +1)) {
        long long srows = 0;
        if (auto f = first_nonfinite(fmt::format("every logit raised by {:.6g}", sp->shift), sp->p1,
                                     ctx.bounds_of(sp->p1), ctx.run(sp->p1), srows)) {
            f->row.reset(); // a row of the shifted problem
            return *f;
        }
        shifted = fmt::format("{} rows finite with every logit raised by {:.6g}", srows, sp->shift);
    }
    const auto row = default_probe_row(p);
    if (!row) return GateVerdict::pass(fmt::format("{} rows finite; {}; no row to probe", rows, shifted));
    if (!ctx.target().records_probes())
        return GateVerdict::pass(
            fmt::format("{} rows finite; {}; max exp not checked (the target records no probes)", rows, shifted));
    const Observation pr = ctx.run(p, *row);
    if (!pr.probe) return GateVerdict::fail("target returned no probe trace", row);
    const float mx = pr.probe->max_exp;
    if (!(mx <= 1.0f))
        return GateVerdict::fail(
            fmt::format("{}: largest exponential {:.9g} > 1: the row max was not subtracted (row max "
                        "recorded {:.6g})",
                        row_name(*row), mx, pr.probe->row_max),
            row);
    return GateVerdict::pass(
        fmt::format("{} rows finite; {}; probed {}: max exp {:.9g}", rows, shifted, row_name(*row), mx));
}

} // namespace attncheck::gates
