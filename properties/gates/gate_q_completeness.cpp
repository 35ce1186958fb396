// Gate "q_completeness" (bug class: partial Q load -- a per-thread register
// array left with only q[0] set, or a vectorized load that covers part of
// head_dim):
//  (a) the raw scores q.k the probe records for the last query of the
//      longest sequence, in up to 8 q heads, match the oracle's dot products
//      within their bound (a dropped channel is missing from the sum);
//  (b) rotating the head_dim channels of Q and K by the same amount
// leaves every score unchanged, so the target's output must not change
// beyond the two runs' bounds. A kernel that drops or duplicates some q
// channels sees a different subset of products after the rotation. A
// rotation by one and by half of head_dim are both tried, so a channel is
// moved across a thread's register boundary and across a warp's half.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict q_completeness(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    const int d = p.head_dim;
    if (d == 1) return GateVerdict::skip("head_dim 1: a single channel");
    std::string notes;
    double worst = -1; // error / bound of the probed raw scores and of the rotations
    if (!ctx.target().records_probes()) notes = "raw scores not checked (the target records no probes)";
    if (const auto row = default_probe_row(p); row && ctx.target().records_probes()) {
        int probed = 0;
        for (int h = 0; h < std::min(p.n_q_heads, 8); ++h) {
            const ProbeRequest r{row->seq, h, row->token};
            const Observation pr = ctx.run(p, r);
            if (!pr.probe) return GateVerdict::fail("target returned no probe trace", r);
            const RowBound rb = bound_row(p, r.seq, r.head, r.token, ctx.profile());
            if (!rb.finite_input) continue;
            const auto ref = reference_row<double>(p, r.seq, r.head, r.token);
            ++probed;
            for (int j = 0; j < p.kv_lens[r.seq]; ++j) {
                if (!ref.visible[j] || std::isnan(pr.probe->raw[j])) continue;
                const double tol = rb.s[j] / std::fabs(p.scale);
                const double err = std::fabs(pr.probe->raw[j] - ref.raw[j]);
                if (tol > 0) worst = std::max(worst, err / tol);
                if (!(err <= tol))
                    return GateVerdict::fail(
                        fmt::format("{}: raw score q.k of key {} is {:.9g}, the full dot product is "
                                    "{:.9g} (error {:.3g}, bound {:.3g}): not every q channel reached it",
                                    row_name(r), j, pr.probe->raw[j], ref.raw[j], err, tol),
                        r);
            }
        }
        notes = fmt::format("raw scores of {} probed rows match the full dot products", probed);
    }
    for (int shift : {1, d / 2}) {
        if (shift == 0 || (shift == d / 2 && d / 2 == 1)) continue;
        AttentionProblem r = p;
        auto rotate = [&](const std::vector<float>& src, std::vector<float>& dst) {
            for (size_t row = 0; row < src.size() / d; ++row)
                for (int c = 0; c < d; ++c) dst[row * d + c] = src[row * d + (c + shift) % d];
        };
        rotate(p.q, r.q);
        rotate(p.k, r.k);
        const Observation obs = ctx.run(r);
        GateVerdict v = agreement_verdict(fmt::format("Q and K channels rotated by {}", shift), p, ctx.base(),
                                          ctx.bounds(), r, obs, ctx.bounds_of(r), same_rows());
        if (v.status == GateStatus::fail) {
            v.summary += ": some q channels do not reach the dot product";
            return v;
        }
        notes += "; " + v.summary;
        worst = std::max(worst, v.ratio);
    }
    return GateVerdict::pass(notes, worst);
}

} // namespace attncheck::gates
