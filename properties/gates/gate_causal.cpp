// Gate "causal" (bug classes 2, 4, 11: mask timing and value, causal
// alignment when q_len != kv_len, sliding-window off-by-one):
//  (a) the future is invisible: the last key of every sequence, seen only by
//      its last query, is replaced by a 16x larger key and a different value;
//      every other row must keep its values (bit for bit, except that +0 and
//      -0 are the same value: a masked key's p = 0 times a V of either sign
//      may leave O's zeros with either sign, and that leaks nothing -- seen
//      on the H200, flash_prefill fp32 with V rounded to zeros);
//  (b) masked probabilities are exactly 0 (probe of one row);
//  (c) every past key matters: a key the oracle gives a probability clearly
//      above its bound must not get 0 (probe of the same row) -- a mask that
//      drops the diagonal or a past key, or aligns top-left, shows here.
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict causal(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    if (!p.causal) return GateVerdict::skip("case is not causal");
    const Observation& base = ctx.base();

    // (a) perturb the last key and value of every sequence.
    AttentionProblem fut = p;
    const double lim = max_finite(p.dtype) / 4;
    int perturbed = 0;
    for (int s = 0; s < p.batch(); ++s) {
        if (p.kv_lens[s] == 0) continue;
        ++perturbed;
        for (int h = 0; h < p.n_kv_heads; ++h) {
            const long long i = p.kv_index(s, p.kv_lens[s] - 1, h);
            for (int c = 0; c < p.head_dim; ++c) {
                fut.k[i + c] = round_to(p.dtype, std::clamp(16.0 * p.k[i + c] + 1.0, -lim, lim));
                fut.v[i + c] = round_to(p.dtype, std::clamp(-4.0 * p.v[i + c] - 2.0, -lim, lim));
            }
        }
    }
    long long compared = 0;
    if (perturbed > 0) {
        const Observation obs = ctx.run(fut);
        for (int s = 0; s < p.batch(); ++s)
            for (int t = 0; t < p.q_lens[s]; ++t) {
                const long long pos = static_cast<long long>(p.kv_lens[s]) - p.q_lens[s] + t;
                if (p.kv_lens[s] > 0 && pos >= p.kv_lens[s] - 1) continue; // sees the perturbed key
                for (int h = 0; h < p.n_q_heads; ++h) {
                    const ProbeRequest r{s, h, t};
                    ++compared;
                    if (!rows_same_values(p, base, r, p, obs, r))
                        return GateVerdict::fail(
                            fmt::format("changing the last key/value of each sequence (visible only to its last query) "
                                        "changed {} (position {}): O[0] {:.9g} -> {:.9g}, LSE {:.9g} -> {:.9g}",
                                        row_name(r), pos, base.o[p.o_index(s, t, h)], obs.o[p.o_index(s, t, h)],
                                        base.lse[p.lse_index(s, t, h)], obs.lse[p.lse_index(s, t, h)]),
                            r);
                }
            }
    }

    // (b), (c) on one probed row.
    const auto row = default_probe_row(p, p.n_q_heads - 1);
    if (!row || !ctx.target().records_probes())
        return GateVerdict::pass(
            fmt::format("future perturbation: {} rows unchanged; {}", compared,
                        row ? "masked P not checked (the target records no probes)" : "no row to probe"));
    const Observation pr = ctx.run(p, *row);
    if (!pr.probe) return GateVerdict::fail("target returned no probe trace", row);
    const ProbeTrace& t = *pr.probe;
    const auto ref = reference_row<double>(p, row->seq, row->head, row->token);
    const RowBound rb = bound_row(p, row->seq, row->head, row->token, ctx.profile());
    const long long pos = static_cast<long long>(p.kv_lens[row->seq]) - p.q_lens[row->seq] + row->token;
    int masked = 0, mattering = 0;
    for (int j = 0; j < p.kv_lens[row->seq]; ++j) {
        if (!ref.visible[j]) {
            ++masked;
            if (t.p[j] != 0.0f)
                return GateVerdict::fail(
                    fmt::format("{} (position {}): masked key {} has probability {:.6g}, not exactly 0", row_name(*row),
                                pos, j, t.p[j]),
                    row);
            continue;
        }
        if (rb.meaningful && rb.finite_input && ref.p[j] - rb.p[j] > 0) {
            ++mattering;
            if (!(t.p[j] > 0.0f))
                return GateVerdict::fail(
                    fmt::format(
                        "{} (position {}): past key {} got probability {:.6g}; the oracle gives {:.6g} (bound {:.3g}): "
                        "a key the row must see was masked",
                        row_name(*row), pos, j, t.p[j], ref.p[j], rb.p[j]),
                    row);
        }
    }
    return GateVerdict::pass(
        fmt::format("future perturbation: {} rows unchanged; probed {}: {} masked keys at 0, "
                    "{} past keys all weighted",
                    compared, row_name(*row), masked, mattering));
}

} // namespace attncheck::gates
