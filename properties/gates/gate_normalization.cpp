// Gate "normalization" (bug classes: wrong normalizer, online softmax without
// rescale, fp16 accumulation of the row sum):
//  (a) the probed row's probabilities sum to 1 within its bound (each P_j is
//      within rhoP P_j of the oracle, so the sum is within rhoP of 1, plus the
//      few fp32 roundings of reconstructing P from the probe);
//  (b) constant V: every V row of a (sequence, kv head) set to one vector c
//      gives O = c in every row that sees a key, within the normalization
//      tolerance (independent of the logits) or the row's bound;
//  (d) every output element lies in the convex hull of the V values its row
//      attends to, widened by its bound or, where the logits are too large
//      for that to mean anything, by the normalization tolerance alone
//      (weights that are a distribution cannot leave the hull);
//  (c) one-hot V: V_j = e_(j mod d) makes O_c the sum of the probabilities of
//      the keys j = c (mod d): the output must read back the P the probe
//      recorded for the probed row, within the two bounds.
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict normalization(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    std::string sum_note = "no row to probe";
    const auto row = default_probe_row(p);
    std::optional<ProbeTrace> trace;
    std::optional<RowBound> row_bound;
    if (row && !ctx.target().records_probes()) sum_note = "row sums not checked (the target records no probes)";
    if (row && ctx.target().records_probes()) {
        const Observation pr = ctx.run(p, *row);
        if (!pr.probe) return GateVerdict::fail("target returned no probe trace", row);
        const RowBound rb = bound_row(p, row->seq, row->head, row->token, ctx.profile());
        if (rb.meaningful && rb.finite_input && !rb.masked) {
            double sum = 0;
            for (float x : pr.probe->p) sum += x;
            const double tol = rb.rho_p + 4 * ctx.profile().u_acc;
            if (!(std::fabs(sum - 1) <= tol))
                return GateVerdict::fail(
                    fmt::format("{}: probabilities sum to {:.9g}, not 1 within {:.3g}", row_name(*row), sum, tol), row);
            sum_note = fmt::format("probed {} sums to 1{:+.3g}", row_name(*row), sum - 1);
            trace = pr.probe;
            row_bound = rb;
        }
    }

    // (b) constant V: small integers, exact in every dtype.
    AttentionProblem cv = p;
    auto const_value = [&](int s, int h, int c) { return static_cast<float>(((s * 5 + h * 7 + c * 3) % 9) - 4); };
    for (int s = 0; s < p.batch(); ++s)
        for (int j = 0; j < p.kv_lens[s]; ++j)
            for (int h = 0; h < p.n_kv_heads; ++h)
                for (int c = 0; c < p.head_dim; ++c) cv.v[p.kv_index(s, j, h) + c] = const_value(s, h, c);
    const Observation co = ctx.run(cv);
    const PrecisionProfile prof = ctx.profile_of(cv);
    const ProblemBounds cb = ctx.bounds_of(cv);
    double worst = 0;
    for (int s = 0; s < p.batch(); ++s)
        for (int t = 0; t < p.q_lens[s]; ++t)
            for (int h = 0; h < p.n_q_heads; ++h) {
                const int n = visible_keys(p, s, t);
                if (n == 0) continue;
                const RowTolerance& rb = cb.rows[static_cast<size_t>(cv.lse_index(s, t, h))];
                const double* rb_o = &cb.o[static_cast<size_t>(cv.o_index(s, t, h))];
                if (!rb.finite_input) continue;
                for (int c = 0; c < p.head_dim; ++c) {
                    const double want = const_value(s, h / p.group(), c);
                    const double tol =
                        std::max(rb.meaningful ? rb_o[c] : 0.0, normalization_tolerance(cv, prof, n, std::fabs(want)));
                    const double got = co.o[cv.o_index(s, t, h) + c];
                    const double err = std::fabs(got - want);
                    if (tol > 0) worst = std::max(worst, err / tol);
                    if (!(err <= tol))
                        return GateVerdict::fail(
                            fmt::format(
                                "constant V: {} gave O[{}] = {:.9g} instead of {} (error {:.3g}, tolerance {:.3g}): "
                                "the weights do not sum to 1",
                                row_name({s, h, t}), c, got, want, err, tol),
                            ProbeRequest{s, h, t});
                }
            }

    // (d) the hull of the attended V values.
    const Observation& base = ctx.base();
    for (int s = 0; s < p.batch(); ++s)
        for (int t = 0; t < p.q_lens[s]; ++t) {
            const int n = visible_keys(p, s, t);
            if (n == 0) continue;
            for (int h = 0; h < p.n_q_heads; ++h) {
                const RowTolerance& rb = ctx.bounds().rows[static_cast<size_t>(p.lse_index(s, t, h))];
                const double* rb_o = &ctx.bounds().o[static_cast<size_t>(p.o_index(s, t, h))];
                if (!rb.finite_input) continue;
                const int kvh = h / p.group();
                for (int c = 0; c < p.head_dim; ++c) {
                    double lo = INFINITY, hi = -INFINITY;
                    for (int j = 0; j < p.kv_lens[s]; ++j) {
                        if (!oracle_key_visible(p, s, t, j)) continue;
                        const double v = p.v[p.kv_index(s, j, kvh) + c];
                        lo = std::min(lo, v);
                        hi = std::max(hi, v);
                    }
                    const double tol =
                        std::max(rb.meaningful ? rb_o[c] : 0.0,
                                 normalization_tolerance(p, ctx.profile(), n, std::max(std::fabs(lo), std::fabs(hi))));
                    const float o = base.o[p.o_index(s, t, h) + c];
                    if (!(o >= lo - tol && o <= hi + tol))
                        return GateVerdict::fail(
                            fmt::format("{}: O[{}] = {:.9g} outside the convex hull [{:.9g}, {:.9g}] of the attended V "
                                        "values (widened by {:.3g}): the weights are not a distribution",
                                        row_name({s, h, t}), c, o, lo, hi, tol),
                            ProbeRequest{s, h, t});
                }
            }
        }

    // (c) one-hot V, read against the probed P.
    std::string onehot_note = "one-hot V: no judged row";
    if (trace) {
        AttentionProblem oh = p;
        for (int s = 0; s < p.batch(); ++s)
            for (int j = 0; j < p.kv_lens[s]; ++j)
                for (int h = 0; h < p.n_kv_heads; ++h)
                    for (int c = 0; c < p.head_dim; ++c)
                        oh.v[p.kv_index(s, j, h) + c] = (j % p.head_dim == c) ? 1.0f : 0.0f;
        const Observation oo = ctx.run(oh);
        const RowBound ob = bound_row(oh, row->seq, row->head, row->token, ctx.profile_of(oh));
        const auto ref = reference_row<double>(p, row->seq, row->head, row->token);
        if (ob.meaningful) {
            double worst_oh = 0;
            for (int c = 0; c < p.head_dim; ++c) {
                double want = 0, tol = ob.o[c];
                for (int j = c; j < p.kv_lens[row->seq]; j += p.head_dim) {
                    want += trace->p[j];
                    tol += row_bound->p[j] + 4 * ctx.profile().u_acc * ref.p[j];
                }
                const double got = oo.o[oh.o_index(row->seq, row->token, row->head) + c];
                worst_oh = std::max(worst_oh, std::fabs(got - want) / tol);
                if (!(std::fabs(got - want) <= tol))
                    return GateVerdict::fail(
                        fmt::format(
                            "one-hot V: {} gave O[{}] = {:.9g}, but its probed P puts {:.9g} on the keys j = {} "
                            "(mod {}) (tolerance {:.3g}): the output is not P.V",
                            row_name(*row), c, got, want, c, p.head_dim, tol),
                        row);
            }
            onehot_note =
                fmt::format("one-hot V reads back the probed P (worst difference/tolerance {:.3g})", worst_oh);
        }
    }
    return GateVerdict::pass(fmt::format("{}; constant V returned in every row (worst err/tolerance {:.3g}); {}",
                                         sum_note, worst, onehot_note));
}

} // namespace attncheck::gates
