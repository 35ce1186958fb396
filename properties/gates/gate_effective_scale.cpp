// Gate "effective_scale": the softmax sees scale * q.k with the case's scale,
// applied exactly once (bug class: scale missing, applied twice, 1/d instead
// of 1/sqrt(d)). One query q = e_0 against two keys k1 = b e_0, k2 = -b e_0
// with values v1 = e_0, v2 = e_1 gives O_0 = p1, O_1 = p2 in every head, and
// ln(O_0 / O_1) = 2 b scale_applied. A ratio: a normalizer bug scales p1 and
// p2 alike and does not show here (the normalization gate names it), and
// only channel 0 of q is used, so a partial Q load does not either. b is a
// power of two with b * scale near 3/4, so both probabilities are far from 0
// and 1 and the ratio is resolved to a few units of roundoff; the interval
// of ratios allowed by the two outputs' error bounds decides.
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict effective_scale(GateContext& ctx) {
    const AttentionProblem& base = ctx.problem();
    const int d = base.head_dim, hq = base.n_q_heads, hk = base.n_kv_heads;
    if (d < 2) return GateVerdict::skip("head_dim 1: the probe needs two value channels");
    // The probe does not read the case's data; it runs only for cases that
    // attend to something, so that shrinking cannot trade a case whose own
    // rows show a bug for an empty one on which only this probe does.
    if (!any_visible_row(base)) return GateVerdict::skip("no row of the case sees a key");
    const double b = std::exp2(std::round(std::log2(0.75 / base.scale)));
    if (b > max_finite(base.dtype) / 2 || b < min_normal(base.dtype))
        return GateVerdict::skip(
            fmt::format("scale {:.3g}: the probe's key magnitude {:.3g} is not representable", base.scale, b));
    AttentionProblem p = select_sequences(base, {});
    p.q_lens = {1};
    p.kv_lens = {2};
    p.q_start = {0};
    p.kv_start = {0};
    p.causal = false;
    p.window = 0;
    p.q.assign(static_cast<size_t>(hq) * d, 0.0f);
    for (int h = 0; h < hq; ++h) p.q[p.q_index(0, 0, h)] = 1.0f;
    p.k.assign(static_cast<size_t>(2) * hk * d, 0.0f);
    p.v.assign(p.k.size(), 0.0f);
    for (int h = 0; h < hk; ++h) {
        p.k[p.kv_index(0, 0, h)] = static_cast<float>(b);
        p.k[p.kv_index(0, 1, h)] = static_cast<float>(-b);
        p.v[p.kv_index(0, 0, h)] = 1.0f;
        p.v[p.kv_index(0, 1, h) + 1] = 1.0f;
    }
    if (!ctx.supports(p)) return GateVerdict::skip("two-key probe not supported: " + ctx.unsupported(p));
    const Observation obs = ctx.run(p);
    const PrecisionProfile prof = ctx.profile_of(p);
    const double want = 2 * b * base.scale; // ln(p1 / p2)
    double worst_rel = 0;
    for (int h = 0; h < hq; ++h) {
        const RowBound rb = bound_row(p, 0, h, 0, prof);
        const double o0 = obs.o[p.o_index(0, 0, h)], o1 = obs.o[p.o_index(0, 0, h) + 1];
        // p1 + p2 = 1 is the normalization gate's to judge; a probe whose
        // weights do not sum to 1 measures nothing about the scale.
        if (!(std::fabs(o0 + o1 - 1) <= rb.o[0] + rb.o[1]))
            return GateVerdict::skip(
                fmt::format("the probe's weights sum to {:.9g}, not 1: normalization, not scale", o0 + o1));
        const double lo = std::log((o0 - rb.o[0]) / (o1 + rb.o[1])), hi = std::log((o0 + rb.o[0]) / (o1 - rb.o[1]));
        const double applied = std::log(o0 / o1) / (2 * b);
        worst_rel = std::max(worst_rel, std::fabs(applied / base.scale - 1));
        if (!(lo <= want && want <= hi)) {
            const double ratio = applied / base.scale;
            std::string hint;
            if (std::fabs(ratio - base.scale) < 0.02 * base.scale)
                hint = " -- the scale applied twice";
            else if (std::fabs(ratio * base.scale - 1) < 0.02)
                hint = " -- the scale not applied";
            else if (std::fabs(ratio * std::sqrt(d) - 1) < 0.02)
                hint = " -- 1/head_dim instead of 1/sqrt(head_dim)";
            return GateVerdict::fail(
                fmt::format(
                    "q head {}: two keys at scaled logits +-{:.4g} gave P = {:.6g} / {:.6g}: effective scale {:.6g}, "
                    "expected {:.6g} (ratio {:.4g}; the outputs' bounds allow ln(p1/p2) in [{:.6g}, {:.6g}], "
                    "expected {:.6g}){}",
                    h, want / 2, o0, o1, applied, base.scale, ratio, lo, hi, want, hint),
                ProbeRequest{0, h, 0});
        }
    }
    return GateVerdict::pass(fmt::format("scale {:.6g} recovered in all {} heads (largest relative deviation {:.3g})",
                                         base.scale, hq, worst_rel));
}

} // namespace attncheck::gates
