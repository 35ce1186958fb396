#include "oracle/error_model.hpp"

#include "engine/timing/phase_timer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "oracle/reference_attention.hpp"

namespace attncheck {

double gamma_n(double n, double u) {
    const double nu = n * u;
    return nu < 1.0 ? nu / (1.0 - nu) : std::numeric_limits<double>::infinity();
}

RowBound bound_row(const AttentionProblem& pb, int seq, int head, int tok, const PrecisionProfile& prof) {
    ScopedPhase phase(Phase::oracle);
    const int d = pb.head_dim, n_all = pb.kv_lens[seq];
    const int kvh = head / pb.group();
    const double uA = prof.u_acc;
    const double uT = unit_roundoff(prof.store);
    const double uO = prof.output == DType::f32 ? 0x1p-24 : unit_roundoff(prof.output);
    const double scale = std::fabs(pb.scale);
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
        if (!oracle_key_visible(pb, seq, tok, j)) continue;
        vis[j] = 1;
        ++n;
        const float* k = &pb.k[pb.kv_index(seq, j, kvh)];
        const float* v = &pb.v[pb.kv_index(seq, j, kvh)];
        double dot = 0, absdot = 0;
        for (int c = 0; c < d; ++c) {
            dot += static_cast<double>(q[c]) * k[c];
            absdot += std::fabs(static_cast<double>(q[c]) * k[c]);
            if (!std::isfinite(k[c]) || !std::isfinite(v[c])) rb.finite_input = false;
        }
        s[j] = dot * pb.scale;
        a[j] = absdot * scale;
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
    const double g_dot = gamma_n(d + 2, uA);
    double e_max = 0;
    for (int j = 0; j < n_all; ++j) {
        if (!vis[j]) continue;
        double e = g_dot * a[j];
        if (prof.scores_stored) {
            // Stored scores may be raw (unscaled) or scaled; either way the
            // rounding is relative to the stored magnitude. Overflow of the
            // stored format makes the bound meaningless.
            const double raw_mag = (std::fabs(s[j]) + e) / std::max(scale, 1e-300);
            if (std::max(std::fabs(s[j]) + e, raw_mag) > max_finite(prof.store)) rb.meaningful = false;
            e += uT * (std::fabs(s[j]) + e);
        }
        rb.s[j] = e;
        e_max = std::max(e_max, e);
    }
    double arg_max = 0;
    for (int j = 0; j < n_all; ++j)
        if (vis[j]) arg_max = std::max(arg_max, std::fabs(s[j] - m));
    const double delta = e_max + 2.0 * uA * (arg_max + 2.0 * e_max);
    rb.delta = delta;

    // Online softmax rescales and split merges: each multiplies partial sums
    // by a computed exp(m_old - m_new) (exp's ulps, a multiply, an add).
    const int splits = prof.uses_splits ? std::max(1, pb.num_splits) : 1;
    // Visible keys need not start on a tile boundary (windows, causal rows of
    // a block aligned to key 0), so n keys can touch one tile more than
    // ceil(n / tile).
    const double tiles = prof.kv_tile > 0 ? std::ceil(static_cast<double>(n) / prof.kv_tile) + 1.0 : 1.0;
    const double t = (tiles - 1.0) + (splits - 1.0);
    const double r = (prof.exp_ulps + 3.0) * uA;
    const double g_sum = gamma_n(static_cast<double>(n) + splits, uA);
    const double ce = 1.0 + prof.exp_ulps * uA;

    double rho = std::exp(2.0 * delta) * ce * ce * (1.0 + g_sum) * (1.0 + uA) * (1.0 + t * r) - 1.0;
    if (prof.probs_stored) rho = (1.0 + rho) * (1.0 + uT) - 1.0;
    rb.rho_p = rho;
    if (!(rho < 0.5)) rb.meaningful = false;

    // Exact probabilities (fp64) for P and O bounds.
    double l = 0;
    std::vector<double> p(n_all, 0.0);
    for (int j = 0; j < n_all; ++j)
        if (vis[j]) l += (p[j] = std::exp(s[j] - m));
    // Underflow adds absolute errors the relative model cannot see: an
    // exponential below fp32's smallest normal may flush to zero (GPUs run
    // with FTZ), an error of up to 2^-126 / l in p_j; a probability stored in
    // T below T's smallest normal is rounded on the subnormal grid. U_c sums
    // those per-key absolute errors weighted by |v_jc|.
    std::vector<double> W(d, 0.0), O(d, 0.0), U(d, 0.0);
    for (int j = 0; j < n_all; ++j) {
        if (!vis[j]) continue;
        p[j] /= l;
        double tiny = 0;
        if (p[j] * l * (1.0 + rho) < 0x1p-125) tiny += 0x1p-126 / l;
        if (prof.probs_stored && p[j] * (1.0 + rho) < min_normal(prof.store))
            tiny += half_subnormal_spacing(prof.store);
        rb.p[j] = rho * p[j] + tiny;
        const float* v = &pb.v[pb.kv_index(seq, j, kvh)];
        for (int c = 0; c < d; ++c) {
            const double av = std::fabs(static_cast<double>(v[c]));
            W[c] += p[j] * av;
            U[c] += tiny * av;
            O[c] += p[j] * v[c];
        }
    }
    const double f_o = (1.0 + rho) * (1.0 + g_sum) * (1.0 + uA) - 1.0;
    // The fp64 oracle's own error (same form with u = 2^-53) is added so
    // that the comparison bounds |target - oracle|, not |target - exact|.
    const double g_ref = 4.0 * gamma_n(static_cast<double>(n) + d + 8, 0x1p-53) + 4.0 * delta * 0x1p-40;
    // Output underflow: fp32 outputs may flush (up to 2^-126); fp16/bf16
    // outputs round on their subnormal grid.
    const double eta_o = prof.output == DType::f32 ? 0x1p-126 : half_subnormal_spacing(prof.output);
    for (int c = 0; c < d; ++c) {
        const double b = f_o * W[c] + (1.0 + g_sum) * (1.0 + uA) * U[c];
        rb.o[c] = b + uO * (std::fabs(O[c]) + b) + g_ref * W[c] + eta_o;
    }
    const double rho_l = ce * (1.0 + g_sum) * (1.0 + t * r) - 1.0;
    rb.lse = delta + rho_l / (1.0 - rho_l) + 4.0 * uA * (std::fabs(m) + std::fabs(std::log(l)) + 1.0);
    return rb;
}

} // namespace attncheck
