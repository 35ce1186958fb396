// The decoder's error model stage by stage: the bound on each stage's
// output from the error of its input (sensitivity) plus its own rounding
// (local), and the walk through the whole forward that chains them
// (propagate). The derivation of each formula is in
// docs/model-error-model.md (section numbers below refer to it).
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/oracle/model_bound_propagation.hpp"
#include "model/rope.hpp"
#include "oracle/error_model.hpp"

namespace attncheck::model_bounds {

namespace {

// Lipschitz constant of silu(x) = x sigmoid(x): max |silu'| = 1.0998 (at
// x ~ 2.4); 1.1 bounds it.
constexpr double kSiluLip = 1.1;

struct Units {
    double uT, hsT; // store rounding: relative, and absolute (half the subnormal spacing of T)
    double u;       // fp32 elementwise
    double uG;      // GEMM accumulation
    double rope_rel;
};

Units units_of(const ModelPrecision& p) {
    return {unit_roundoff(p.store), half_subnormal_spacing(p.store), p.u_elem, p.u_gemm, p.rope_angle_rel};
}

// Section 2: a value computed with error `pre` and then stored in T.
double stored(double pre, double y, const Units& U) { return pre + U.uT * (std::fabs(y) + pre) + U.hsT; }

// Section 3: RMSNorm y = g x / sqrt(|x|^2/n + eps).
void rms_bound(const double* x, const double* e, const float* g, int n, double eps, const Units& U, const double* y,
               double* out) {
    double ss = 0, ne2 = 0;
    for (int i = 0; i < n; ++i) {
        ss += x[i] * x[i];
        ne2 += e[i] * e[i];
    }
    const double s = std::sqrt(ss / n + eps), ne = std::sqrt(ne2), rn = std::sqrt(static_cast<double>(n));
    const double s_lo = s - ne / rn;
    if (!(s_lo > 0) || !std::isfinite(ne)) {
        std::fill(out, out + n, kInf);
        return;
    }
    const double rho = gamma_n(n + 3, U.u) + 7.0 * U.u;
    for (int i = 0; i < n; ++i) {
        const double ag = std::fabs(static_cast<double>(g[i])), M = std::fabs(x[i]) + e[i];
        const double sens = ag * (e[i] / s_lo + std::fabs(x[i]) * ne / (rn * s * s_lo));
        const double local = rho * ag * M / s_lo;
        out[i] = stored(sens + local, y[i], U);
    }
}

// Section 4: y = W x (+ b), fp32 accumulation with u_gemm, then (optionally) stored.
void lin_bound(const float* W, int out, int in, const double* x, const double* e, const float* bias, bool store,
               const Units& U, const double* y, double* res) {
    const double g = gamma_n(in, U.uG);
    for (int j = 0; j < out; ++j) {
        const float* w = W + static_cast<size_t>(j) * in;
        double sens = 0, mag = 0;
        for (int i = 0; i < in; ++i) {
            const double aw = std::fabs(static_cast<double>(w[i]));
            sens += aw * e[i];
            mag += aw * (std::fabs(x[i]) + e[i]);
        }
        double pre = sens + g * mag;
        // The bias added in fp32 after the sum (our engines), or used as the
        // accumulator's initial value (BLAS addmm): both covered.
        if (bias)
            pre += U.u * mag * (1 + g) + gamma_n(in + 1, std::max(U.u, U.uG)) * std::fabs(static_cast<double>(bias[j]));
        res[j] = store ? stored(pre, y[j], U) : pre;
    }
}

// Section 5: RoPE on `heads` heads of one position. With yarn's attention
// factor m, cos and sin are m times the unit ones: the table's error and the
// products' magnitudes scale by m.
void rope_bound(const double* x, const double* e, int heads, const ModelConfig& cfg, int pos, const Units& U,
                const double* y, double* out) {
    const int hd = cfg.head_dim;
    const double m = rope_attention_factor(cfg);
    std::vector<double> c, s;
    rope_angles(cfg, pos, c, s);
    for (int i = 0; i < hd / 2; ++i) {
        const auto [a, b] = rope_pair(cfg.rope_pairing, hd, i);
        const double ang_err = U.rope_rel * static_cast<double>(pos) * rope_inv_freq(cfg, i);
        const double tab = U.u + 1e-15 * (pos + 1) + ang_err; // |c_hat - c|, |s_hat - s| relative to m
        const double ca = std::fabs(c[static_cast<size_t>(i)]), sa = std::fabs(s[static_cast<size_t>(i)]);
        for (int h = 0; h < heads; ++h) {
            const size_t o = static_cast<size_t>(h) * hd;
            const double ea = e[o + a], eb = e[o + b];
            const double Ma = std::fabs(x[o + a]) + ea, Mb = std::fabs(x[o + b]) + eb;
            const double local = (Ma + Mb) * m * (gamma_n(3, U.u) * (1 + tab) + tab);
            out[o + a] = stored(ca * ea + sa * eb + local, y[o + a], U);
            out[o + b] = stored(ca * eb + sa * ea + local, y[o + b], U);
        }
    }
}

// Section 6: act = silu(g) * u.
void act_bound(const double* g, const double* eg, const double* u, const double* eu, int n, const Units& U,
               const double* y, double* out) {
    for (int i = 0; i < n; ++i) {
        const double sg = std::fabs(g[i] / (1.0 + std::exp(-g[i])));
        const double Ms = sg + kSiluLip * eg[i], Mu = std::fabs(u[i]) + eu[i];
        const double sens = sg * eu[i] + Mu * kSiluLip * eg[i];
        const double local = 10.0 * U.u * Ms * Mu + 1e-30; // exp (2 ulp), +, /, *: <= 10 u relative; underflow floor
        out[i] = stored(sens + local, y[i], U);
    }
}

// Section 7: residual add, fp32 add then stored.
void add_bound(const double* a, const double* ea, const double* b, const double* eb, int n, const Units& U,
               const double* y, double* out) {
    for (int i = 0; i < n; ++i) {
        const double pre = ea[i] + eb[i] + U.u * (std::fabs(a[i]) + ea[i] + std::fabs(b[i]) + eb[i]);
        out[i] = stored(pre, y[i], U);
    }
}

// Section 8: sensitivity of one attention row (query position pos of its
// sequence, all keys 0..pos visible) to errors in q, k, v.
void attn_sens(const double* q, const double* eq, const double* K, const double* EK, const double* V, const double* EV,
               int pos, int hd, int kv_stride, double scale, double* out) {
    const int n = pos + 1;
    std::vector<double> s(static_cast<size_t>(n)), ds(static_cast<size_t>(n));
    double m = -kInf, delta = 0;
    for (int j = 0; j < n; ++j) {
        const double* k = K + static_cast<size_t>(j) * kv_stride;
        const double* ek = EK + static_cast<size_t>(j) * kv_stride;
        double dot = 0, d = 0;
        for (int c = 0; c < hd; ++c) {
            dot += q[c] * k[c];
            d += std::fabs(q[c]) * ek[c] + eq[c] * std::fabs(k[c]) + eq[c] * ek[c];
        }
        s[static_cast<size_t>(j)] = dot * scale;
        ds[static_cast<size_t>(j)] = d * scale;
        m = std::max(m, s[static_cast<size_t>(j)]);
        delta = std::max(delta, d * scale);
    }
    double l = 0;
    for (auto& x : s) l += (x = std::exp(x - m));
    const double f = std::expm1(2.0 * delta);
    for (int c = 0; c < hd; ++c) {
        double wv = 0, ev = 0;
        for (int j = 0; j < n; ++j) {
            const double p = s[static_cast<size_t>(j)] / l;
            const double evj = EV[static_cast<size_t>(j) * kv_stride + c];
            wv += p * (std::fabs(V[static_cast<size_t>(j) * kv_stride + c]) + evj);
            ev += p * evj;
        }
        out[c] = std::isfinite(f) ? f * wv + ev : kInf;
    }
}

} // namespace

void propagate(const ModelWeights& w, const std::vector<Row>& rows, const ModelPrecision& P, Source& src, Bounds& B) {
    const ModelConfig& c = w.config;
    const Units U = units_of(P);
    const int R = static_cast<int>(rows.size()), H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn,
              hd = c.head_dim;
    B.assign(static_cast<size_t>(c.layers + 1) * kStages, {});
    auto alloc = [&](int l, Stage s) -> std::vector<double>& {
        auto& v = B[bounds_index(c, l, s)];
        v.assign(static_cast<size_t>(R) * stage_width(c, s), 0.0);
        return v;
    };
    auto orow = [&](int r, int l, Stage s) {
        return rows[static_cast<size_t>(r)].o->row(l, s, rows[static_cast<size_t>(r)].pos, stage_width(c, s));
    };
    // Input error vectors, reused.
    std::vector<double> e1, e2;
    auto in_err = [&](int l, Stage s, int r, std::vector<double>& e) {
        const int wdt = stage_width(c, s);
        e.resize(static_cast<size_t>(wdt));
        src.err(l, s, r, B[bounds_index(c, l, s)], wdt, e.data());
    };
    alloc(c.layers, Stage::embed); // exact gather: 0
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const int pl = l == 0 ? c.layers : l - 1;
        const Stage ps = l == 0 ? Stage::embed : Stage::resid_ffn;
        auto& bn = alloc(l, Stage::attn_norm);
        for (int r = 0; r < R; ++r) {
            in_err(pl, ps, r, e1);
            rms_bound(orow(r, pl, ps), e1.data(), L.attn_norm.data(), H, c.rms_eps, U, orow(r, l, Stage::attn_norm),
                      &bn[static_cast<size_t>(r) * H]);
        }
        auto& bq = alloc(l, Stage::q);
        auto& bk = alloc(l, Stage::k);
        auto& bv = alloc(l, Stage::v);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::attn_norm, r, e1);
            const float* bias = c.qkv_bias ? L.bqkv.data() : nullptr;
            lin_bound(L.wqkv.data(), QD, H, orow(r, l, Stage::attn_norm), e1.data(), bias, true, U,
                      orow(r, l, Stage::q), &bq[static_cast<size_t>(r) * QD]);
            lin_bound(L.wqkv.data() + static_cast<size_t>(QD) * H, KD, H, orow(r, l, Stage::attn_norm), e1.data(),
                      bias ? bias + QD : nullptr, true, U, orow(r, l, Stage::k), &bk[static_cast<size_t>(r) * KD]);
            lin_bound(L.wqkv.data() + static_cast<size_t>(QD + KD) * H, KD, H, orow(r, l, Stage::attn_norm), e1.data(),
                      bias ? bias + QD + KD : nullptr, true, U, orow(r, l, Stage::v), &bv[static_cast<size_t>(r) * KD]);
        }
        auto& bqr = alloc(l, Stage::q_rope);
        auto& bkr = alloc(l, Stage::k_rope);
        for (int r = 0; r < R; ++r) {
            const int pos = rows[static_cast<size_t>(r)].pos;
            in_err(l, Stage::q, r, e1);
            rope_bound(orow(r, l, Stage::q), e1.data(), c.n_q_heads, c, pos, U, orow(r, l, Stage::q_rope),
                       &bqr[static_cast<size_t>(r) * QD]);
            in_err(l, Stage::k, r, e1);
            rope_bound(orow(r, l, Stage::k), e1.data(), c.n_kv_heads, c, pos, U, orow(r, l, Stage::k_rope),
                       &bkr[static_cast<size_t>(r) * KD]);
        }
        auto& ba = alloc(l, Stage::attn_out);
        {
            const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
            const int group = c.n_q_heads / c.n_kv_heads;
            std::vector<double> EK, EV, loc(static_cast<size_t>(hd)), sens(static_cast<size_t>(hd));
            for (int r = 0; r < R; ++r) {
                const Row& row = rows[static_cast<size_t>(r)];
                const int n = row.pos + 1;
                EK.assign(static_cast<size_t>(n) * KD, 0.0);
                EV.assign(static_cast<size_t>(n) * KD, 0.0);
                for (int j = 0; j < n; ++j) {
                    src.cache_err(l, r, j, false, &EK[static_cast<size_t>(j) * KD]);
                    src.cache_err(l, r, j, true, &EV[static_cast<size_t>(j) * KD]);
                }
                in_err(l, Stage::q_rope, r, e1);
                const double* qo = orow(r, l, Stage::q_rope);
                const double* K = row.o->at(l, Stage::k_rope).data();
                const double* V = row.o->at(l, Stage::v).data();
                for (int h = 0; h < c.n_q_heads; ++h) {
                    const int kh = h / group;
                    attn_sens(qo + static_cast<size_t>(h) * hd, e1.data() + static_cast<size_t>(h) * hd, K + kh * hd,
                              EK.data() + kh * hd, V + kh * hd, EV.data() + kh * hd, row.pos, hd, KD, scale,
                              sens.data());
                    src.attn_local(l, r, h, loc.data());
                    for (int ch = 0; ch < hd; ++ch)
                        ba[static_cast<size_t>(r) * QD + h * hd + ch] =
                            sens[static_cast<size_t>(ch)] + loc[static_cast<size_t>(ch)];
                }
            }
        }
        auto& bo = alloc(l, Stage::o_proj);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::attn_out, r, e1);
            lin_bound(L.wo.data(), H, QD, orow(r, l, Stage::attn_out), e1.data(), nullptr, true, U,
                      orow(r, l, Stage::o_proj), &bo[static_cast<size_t>(r) * H]);
        }
        auto& bra = alloc(l, Stage::resid_attn);
        for (int r = 0; r < R; ++r) {
            in_err(pl, ps, r, e1);
            in_err(l, Stage::o_proj, r, e2);
            add_bound(orow(r, pl, ps), e1.data(), orow(r, l, Stage::o_proj), e2.data(), H, U,
                      orow(r, l, Stage::resid_attn), &bra[static_cast<size_t>(r) * H]);
        }
        auto& bfn = alloc(l, Stage::ffn_norm);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::resid_attn, r, e1);
            rms_bound(orow(r, l, Stage::resid_attn), e1.data(), L.ffn_norm.data(), H, c.rms_eps, U,
                      orow(r, l, Stage::ffn_norm), &bfn[static_cast<size_t>(r) * H]);
        }
        auto& bg = alloc(l, Stage::gate);
        auto& bu = alloc(l, Stage::up);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::ffn_norm, r, e1);
            lin_bound(L.w_gate.data(), F, H, orow(r, l, Stage::ffn_norm), e1.data(), nullptr, true, U,
                      orow(r, l, Stage::gate), &bg[static_cast<size_t>(r) * F]);
            lin_bound(L.w_up.data(), F, H, orow(r, l, Stage::ffn_norm), e1.data(), nullptr, true, U,
                      orow(r, l, Stage::up), &bu[static_cast<size_t>(r) * F]);
        }
        auto& bact = alloc(l, Stage::act);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::gate, r, e1);
            in_err(l, Stage::up, r, e2);
            act_bound(orow(r, l, Stage::gate), e1.data(), orow(r, l, Stage::up), e2.data(), F, U,
                      orow(r, l, Stage::act), &bact[static_cast<size_t>(r) * F]);
        }
        auto& bd = alloc(l, Stage::down);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::act, r, e1);
            lin_bound(L.w_down.data(), H, F, orow(r, l, Stage::act), e1.data(), nullptr, true, U,
                      orow(r, l, Stage::down), &bd[static_cast<size_t>(r) * H]);
        }
        auto& brf = alloc(l, Stage::resid_ffn);
        for (int r = 0; r < R; ++r) {
            in_err(l, Stage::resid_attn, r, e1);
            in_err(l, Stage::down, r, e2);
            add_bound(orow(r, l, Stage::resid_attn), e1.data(), orow(r, l, Stage::down), e2.data(), H, U,
                      orow(r, l, Stage::resid_ffn), &brf[static_cast<size_t>(r) * H]);
        }
    }
    const int last = c.layers - 1;
    auto& bf = alloc(c.layers, Stage::final_norm);
    for (int r = 0; r < R; ++r) {
        in_err(last, Stage::resid_ffn, r, e1);
        rms_bound(orow(r, last, Stage::resid_ffn), e1.data(), w.final_norm.data(), H, c.rms_eps, U,
                  orow(r, c.layers, Stage::final_norm), &bf[static_cast<size_t>(r) * H]);
    }
    auto& bl = alloc(c.layers, Stage::logits);
    for (int r = 0; r < R; ++r) {
        in_err(c.layers, Stage::final_norm, r, e1);
        lin_bound(w.lm_head_matrix().data(), c.vocab, H, orow(r, c.layers, Stage::final_norm), e1.data(), nullptr,
                  false, U, orow(r, c.layers, Stage::logits), &bl[static_cast<size_t>(r) * c.vocab]);
    }
}

} // namespace attncheck::model_bounds
