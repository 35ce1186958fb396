#include "oracle/error_model.hpp"

#include "engine/timing/phase_timer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "oracle/reference_attention.hpp"

namespace attncheck {

BoundConstants bound_constants(const AttentionProblem& pb, const PrecisionProfile& prof) {
    BoundConstants k;
    k.u_acc = prof.u_acc;
    k.u_store = unit_roundoff(prof.store);
    k.u_out = prof.output == DType::f32 ? 0x1p-24 : unit_roundoff(prof.output);
    k.scale_abs = std::fabs(pb.scale);
    k.scores_stored = prof.scores_stored ? 1 : 0;
    k.probs_stored = prof.probs_stored ? 1 : 0;
    k.store_max = max_finite(prof.store);
    k.store_min_normal = min_normal(prof.store);
    k.store_half_sub = half_subnormal_spacing(prof.store);
    // Output underflow: fp32 outputs may flush (up to 2^-126); fp16/bf16
    // outputs round on their subnormal grid.
    k.eta_out = prof.output == DType::f32 ? 0x1p-126 : half_subnormal_spacing(prof.output);
    k.exp_ulps = prof.exp_ulps;
    k.kv_tile = prof.kv_tile;
    k.splits = prof.uses_splits ? std::max(1, pb.num_splits) : 1;
    return k;
}

RowBound bound_row(const AttentionProblem& pb, int seq, int head, int tok, const PrecisionProfile& prof) {
    ScopedPhase phase(Phase::oracle);
    const BoundConstants k = bound_constants(pb, prof);
    const int d = pb.head_dim, n_all = pb.kv_lens[seq];
    const int kvh = head / pb.group();
    const float* q = &pb.q[pb.q_index(seq, tok, head)];

    RowBound rb;
    rb.o.assign(d, 0.0);
    rb.s.assign(n_all, 0.0);
    rb.p.assign(n_all, 0.0);
    for (int c = 0; c < d; ++c)
        if (!std::isfinite(q[c])) rb.finite_input = false;

    // Scores and their conditioning, fp64 from the exact inputs.
    std::vector<double> s(n_all, 0.0), a(n_all, 0.0);
    std::vector<char> vis(n_all, 0);
    int n = 0;
    double m = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < n_all; ++j) {
        const float* kr = &pb.k[pb.kv_index(seq, j, kvh)];
        if (!oracle_key_visible(pb, seq, tok, j)) {
            double absdot = 0;
            for (int c = 0; c < d; ++c) absdot += std::fabs(static_cast<double>(q[c]) * kr[c]);
            rb.logit_reach = std::max(rb.logit_reach, absdot * k.scale_abs);
            continue;
        }
        vis[j] = 1;
        ++n;
        const float* v = &pb.v[pb.kv_index(seq, j, kvh)];
        double dot = 0, absdot = 0;
        for (int c = 0; c < d; ++c) {
            dot += static_cast<double>(q[c]) * kr[c];
            absdot += std::fabs(static_cast<double>(q[c]) * kr[c]);
            if (!std::isfinite(kr[c]) || !std::isfinite(v[c])) rb.finite_input = false;
        }
        s[j] = dot * pb.scale;
        a[j] = absdot * k.scale_abs;
        rb.logit_reach = std::max(rb.logit_reach, a[j]);
        m = std::max(m, s[j]);
    }
    if (n == 0) {
        rb.masked = true;
        return rb;
    }
    if (!rb.finite_input) {
        rb.meaningful = false;
        return rb;
    }

    // Logit errors.
    const double g_dot = gamma_n(d + 2, k.u_acc);
    double e_max = 0, arg_max = 0;
    for (int j = 0; j < n_all; ++j) {
        if (!vis[j]) continue;
        rb.s[j] = score_error(k, g_dot, s[j], a[j], &rb.meaningful);
        e_max = std::max(e_max, rb.s[j]);
        arg_max = std::max(arg_max, std::fabs(s[j] - m));
    }
    const RowTerms rt = row_terms(k, n, e_max, arg_max);
    rb.delta = rt.delta;
    rb.rho_p = rt.rho;
    if (!rt.meaningful) rb.meaningful = false;

    // Exact probabilities (fp64) for P and O bounds.
    double l = 0;
    std::vector<double> p(n_all, 0.0);
    for (int j = 0; j < n_all; ++j)
        if (vis[j]) l += (p[j] = std::exp(s[j] - m));
    std::vector<double> W(d, 0.0), O(d, 0.0), U(d, 0.0);
    for (int j = 0; j < n_all; ++j) {
        if (!vis[j]) continue;
        p[j] /= l;
        const double tiny = underflow_error(k, p[j], l, rt.rho);
        rb.p[j] = rt.rho * p[j] + tiny;
        const float* v = &pb.v[pb.kv_index(seq, j, kvh)];
        for (int c = 0; c < d; ++c) {
            const double av = std::fabs(static_cast<double>(v[c]));
            W[c] += p[j] * av;
            U[c] += tiny * av;
            O[c] += p[j] * v[c];
        }
    }
    for (int c = 0; c < d; ++c) {
        rb.o[c] = o_bound(k, rt, n, d, W[c], U[c], O[c]);
        rb.w_max = std::max(rb.w_max, W[c]);
    }
    rb.lse = lse_bound(k, rt, m, l);
    return rb;
}

RowTolerance tolerance_of(const RowBound& rb) {
    return {rb.masked, rb.meaningful, rb.finite_input, rb.delta, rb.rho_p, rb.lse, rb.w_max, rb.logit_reach};
}

ProblemBounds bound_problem(const AttentionProblem& pb, const PrecisionProfile& prof) {
    ProblemBounds out;
    out.rows.resize(static_cast<size_t>(pb.total_q()) * pb.n_q_heads);
    out.o.assign(pb.q.size(), 0.0);
    for (int b = 0; b < pb.batch(); ++b)
        for (int t = 0; t < pb.q_lens[b]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                const RowBound rb = bound_row(pb, b, h, t, prof);
                out.rows[static_cast<size_t>(pb.lse_index(b, t, h))] = tolerance_of(rb);
                std::copy(rb.o.begin(), rb.o.end(), out.o.begin() + pb.o_index(b, t, h));
            }
    return out;
}

} // namespace attncheck
