// Gate "gqa" (bug class 5: GQA head mapping; K and V from the same kv head):
//  (a) mapping recovered: every V row of kv head g set to (g + 1, 1, 1, ...)
//      makes O_0 / O_1 of each q head the index (+1) of the kv head whose V
//      it read, whatever its weights (a ratio, so a normalization bug does
//      not show here); it must be q_head / (n_q_heads / n_kv_heads). With the
//      true keys, a map that reads K from one head and V from another shows
//      too. Needs head_dim >= 2 (two channels for the ratio).
//  (b) GQA equals MHA with K/V heads repeated: the same problem written with
//      n_kv_heads = n_q_heads must give the same rows within both bounds.
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict gqa(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    if (p.head_dim < 2 && p.group() == 1)
        return GateVerdict::skip("MHA with head_dim 1: nothing to map, no ratio to read");
    AttentionProblem hv = p;
    for (int s = 0; s < p.batch(); ++s)
        for (int j = 0; j < p.kv_lens[s]; ++j)
            for (int g = 0; g < p.n_kv_heads; ++g)
                for (int c = 0; c < p.head_dim; ++c)
                    hv.v[p.kv_index(s, j, g) + c] = c == 0 ? static_cast<float>(g + 1) : 1.0f;
    if (p.n_kv_heads + 1 > 256 && p.dtype == DType::bf16) return GateVerdict::skip("kv head indices not exact in bf16");
    const Observation ho = p.head_dim >= 2 ? ctx.run(hv) : Observation{};
    const PrecisionProfile prof = ctx.profile_of(hv);
    const ProblemBounds hb = p.head_dim >= 2 ? ctx.bounds_of(hv) : ProblemBounds{};
    long long rows = 0;
    for (int s = 0; s < p.batch() && p.head_dim >= 2; ++s)
        for (int t = 0; t < p.q_lens[s]; ++t) {
            const int n = visible_keys(p, s, t);
            if (n == 0) continue;
            for (int h = 0; h < p.n_q_heads; ++h) {
                if (!hb.rows[static_cast<size_t>(hv.lse_index(s, t, h))].finite_input) continue;
                ++rows;
                const int want = h / p.group();
                const long long oi = hv.o_index(s, t, h);
                const double denom = ho.o[oi + 1];
                // No weight at all, or a non-finite row: other gates judge those.
                if (!(std::fabs(denom) > 0) || !std::isfinite(denom) || !std::isfinite(ho.o[oi])) continue;
                const double got = ho.o[oi] / denom;
                const double tol = (want + 1) * 2 * normalization_tolerance(hv, prof, n, 1.0);
                if (!(std::fabs(got - (want + 1)) <= tol)) {
                    const long read = std::lround(got) - 1;
                    return GateVerdict::fail(
                        fmt::format(
                            "q head {} read V of kv head {} (O_0/O_1 = {:.9g}), expected kv head {} = {} / ({} / {}) "
                            "({})",
                            h, read, got, want, h, p.n_q_heads, p.n_kv_heads, row_name({s, h, t})),
                        ProbeRequest{s, h, t});
                }
            }
        }
    if (p.group() == 1) return GateVerdict::pass(fmt::format("MHA: head map recovered in {} rows", rows));

    // (b) repeated-KV MHA.
    AttentionProblem mha = p;
    mha.n_kv_heads = p.n_q_heads;
    const long long tokens = p.total_kv();
    mha.k.assign(static_cast<size_t>(tokens) * p.n_q_heads * p.head_dim, 0.0f);
    mha.v.assign(mha.k.size(), 0.0f);
    for (int s = 0; s < p.batch(); ++s)
        for (int j = 0; j < p.kv_lens[s]; ++j)
            for (int h = 0; h < p.n_q_heads; ++h)
                for (int c = 0; c < p.head_dim; ++c) {
                    mha.k[mha.kv_index(s, j, h) + c] = p.k[p.kv_index(s, j, h / p.group()) + c];
                    mha.v[mha.kv_index(s, j, h) + c] = p.v[p.kv_index(s, j, h / p.group()) + c];
                }
    if (!ctx.supports(mha))
        return GateVerdict::pass(fmt::format("head map recovered in {} rows; repeated-KV MHA not supported: {}", rows,
                                             ctx.unsupported(mha)));
    const Observation mo = ctx.run(mha);
    GateVerdict v = agreement_verdict("GQA vs repeated-KV MHA", p, ctx.base(), ctx.bounds(), mha, mo,
                                      ctx.bounds_of(mha), same_rows());
    if (v.status == GateStatus::fail) return v;
    return GateVerdict::pass(fmt::format("head map recovered in {} rows; {}", rows, v.summary), v.ratio);
}

} // namespace attncheck::gates
