// The error model's formulas (docs/error-model.md, summarized in
// error_model.hpp), as functions of per-row quantities. One definition for
// the two places that evaluate them: bound_row on the host
// (error_model.cpp) and the fp64 oracle on the GPU (oracle/gpu/), which
// computes the quantities for every row at once. The loops that gather the
// quantities (scores, maxima, sums over keys) are each side's own.
#pragma once

#include <math.h>

#include "engine/case/host_device.hpp"

namespace attncheck {

// Everything the bound needs from the precision profile and the problem, as
// plain numbers (bound_constants() in error_model.cpp fills it; the device
// sees only this).
struct BoundConstants {
    double u_acc = 0;            // accumulation unit roundoff
    double u_store = 0;          // unit roundoff of stored intermediates
    double u_out = 0;            // unit roundoff of O
    double scale_abs = 0;        // |scale|
    int scores_stored = 0;       // S rounded to the store format
    int probs_stored = 0;        // P rounded to the store format
    double store_max = 0;        // largest finite value of the store format
    double store_min_normal = 0; // its smallest normal
    double store_half_sub = 0;   // half its subnormal spacing
    double eta_out = 0;          // output underflow: fp32 may flush (2^-126); fp16/bf16 round subnormally
    double exp_ulps = 0;         // exp's error in units of u_acc
    int kv_tile = 0;             // online-softmax tile length; 0: one pass
    int splits = 1;              // partitions merged (1 when the target does not split)
};

ATTNCHECK_HD inline double gamma_n(double n, double u) {
    const double nu = n * u;
    return nu < 1.0 ? nu / (1.0 - nu) : INFINITY;
}

// Error bound of one visible key's scaled score s (conditioning a); clears
// *meaningful when a stored score could overflow the store format.
// g_dot = gamma_n(head_dim + 2, u_acc).
ATTNCHECK_HD inline double score_error(const BoundConstants& k, double g_dot, double s, double a, bool* meaningful) {
    double e = g_dot * a;
    if (k.scores_stored) {
        // Stored scores may be raw (unscaled) or scaled; either way the
        // rounding is relative to the stored magnitude.
        const double raw_mag = (fabs(s) + e) / fmax(k.scale_abs, 1e-300);
        if (fmax(fabs(s) + e, raw_mag) > k.store_max) *meaningful = false;
        e += k.u_store * (fabs(s) + e);
    }
    return e;
}

// The row's scalar terms, from its visible key count n, its largest score
// error e_max and its largest |s_j - m|.
struct RowTerms {
    double delta = 0; // logit error bound
    double rho = 0;   // relative bound per probability
    double g_sum = 0, ce = 0, t = 0, r = 0;
    bool meaningful = true;
};

ATTNCHECK_HD inline RowTerms row_terms(const BoundConstants& k, int n, double e_max, double arg_max) {
    RowTerms rt;
    rt.delta = e_max + 2.0 * k.u_acc * (arg_max + 2.0 * e_max);
    // Online softmax rescales and split merges: each multiplies partial sums
    // by a computed exp(m_old - m_new) (exp's ulps, a multiply, an add).
    // Visible keys need not start on a tile boundary (windows, causal rows of
    // a block aligned to key 0), so n keys can touch one tile more than
    // ceil(n / tile).
    const double tiles = k.kv_tile > 0 ? ceil(static_cast<double>(n) / k.kv_tile) + 1.0 : 1.0;
    rt.t = (tiles - 1.0) + (k.splits - 1.0);
    rt.r = (k.exp_ulps + 3.0) * k.u_acc;
    rt.g_sum = gamma_n(static_cast<double>(n) + k.splits, k.u_acc);
    rt.ce = 1.0 + k.exp_ulps * k.u_acc;
    double rho = exp(2.0 * rt.delta) * rt.ce * rt.ce * (1.0 + rt.g_sum) * (1.0 + k.u_acc) * (1.0 + rt.t * rt.r) - 1.0;
    if (k.probs_stored) rho = (1.0 + rho) * (1.0 + k.u_store) - 1.0;
    rt.rho = rho;
    rt.meaningful = rho < 0.5;
    return rt;
}

// Underflow adds absolute errors the relative model cannot see: an
// exponential below fp32's smallest normal may flush to zero (GPUs run with
// FTZ), an error of up to 2^-126 / l in p_j; a probability stored in T below
// T's smallest normal is rounded on the subnormal grid. p is the exact
// probability, l the exact row sum.
ATTNCHECK_HD inline double underflow_error(const BoundConstants& k, double p, double l, double rho) {
    double tiny = 0;
    if (p * l * (1.0 + rho) < 0x1p-125) tiny += 0x1p-126 / l;
    if (k.probs_stored && p * (1.0 + rho) < k.store_min_normal) tiny += k.store_half_sub;
    return tiny;
}

// Bound on |O_c(target) - O_c(oracle)| from W = sum_j p_j |v_jc|,
// U = sum_j underflow_j |v_jc| and the exact O_c.
ATTNCHECK_HD inline double o_bound(const BoundConstants& k, const RowTerms& rt, int n, int d, double W, double U,
                                   double O) {
    const double f_o = (1.0 + rt.rho) * (1.0 + rt.g_sum) * (1.0 + k.u_acc) - 1.0;
    // The fp64 oracle's own error (same form with u = 2^-53) is added so
    // that the comparison bounds |target - oracle|, not |target - exact|.
    const double g_ref = 4.0 * gamma_n(static_cast<double>(n) + d + 8, 0x1p-53) + 4.0 * rt.delta * 0x1p-40;
    const double b = f_o * W + (1.0 + rt.g_sum) * (1.0 + k.u_acc) * U;
    return b + k.u_out * (fabs(O) + b) + g_ref * W + k.eta_out;
}

// Bound on |LSE(target) - LSE(oracle)| from the row max m and row sum l.
ATTNCHECK_HD inline double lse_bound(const BoundConstants& k, const RowTerms& rt, double m, double l) {
    const double rho_l = rt.ce * (1.0 + rt.g_sum) * (1.0 + rt.t * rt.r) - 1.0;
    return rt.delta + rho_l / (1.0 - rho_l) + 4.0 * k.u_acc * (fabs(m) + fabs(log(l)) + 1.0);
}

} // namespace attncheck
