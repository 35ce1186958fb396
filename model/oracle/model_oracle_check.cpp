// Stage-by-stage error bounds of the decoder and the divergence report. The
// derivation of each formula is in docs/model-error-model.md (section
// numbers below refer to it).
#include "model/oracle/model_oracle_check.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/rope.hpp"
#include "oracle/error_model.hpp"

namespace attncheck {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
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

// Section 5: RoPE on `heads` heads of one position.
void rope_bound(const double* x, const double* e, int heads, int hd, RopePairing pr, double theta, int pos,
                const Units& U, const double* y, double* out) {
    std::vector<double> c, s;
    rope_angles(theta, hd, pos, c, s);
    for (int i = 0; i < hd / 2; ++i) {
        const auto [a, b] = rope_pair(pr, hd, i);
        const double ang_err = U.rope_rel * static_cast<double>(pos) * rope_inv_freq(theta, hd, i);
        const double tab = U.u + 1e-15 * (pos + 1) + ang_err; // |c_hat - c|, |s_hat - s| relative to 1
        const double ca = std::fabs(c[static_cast<size_t>(i)]), sa = std::fabs(s[static_cast<size_t>(i)]);
        for (int h = 0; h < heads; ++h) {
            const size_t o = static_cast<size_t>(h) * hd;
            const double ea = e[o + a], eb = e[o + b];
            const double Ma = std::fabs(x[o + a]) + ea, Mb = std::fabs(x[o + b]) + eb;
            const double local = (Ma + Mb) * (gamma_n(3, U.u) * (1 + tab) + tab);
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

// The propagation shared by both bounds. Rows are (oracle trace, position).
// `Source` supplies the input error of a stage for a row: the bound itself
// (a priori) or the engine's actual error (observed).
struct Row {
    const OracleTrace* o;
    int pos;
};

class Source {
public:
    virtual ~Source() = default;
    // |error| of the values of (layer, stage) for row r, given B (the bound
    // of that stage computed so far, [rows][width]).
    virtual void err(int l, Stage s, int r, const std::vector<double>& B, int width, double* out) = 0;
    // |error| of k_rope (v = false) or v (v = true) of key j of row r's sequence.
    virtual void cache_err(int l, int r, int j, bool v, double* out) = 0;
    // The attention family's own rounding bound for row r, q head h.
    virtual void attn_local(int l, int r, int h, double* out) = 0;
};

using Bounds = std::vector<std::vector<double>>; // [slot * kStages + stage][rows * width]

size_t key(const ModelConfig& c, int layer, Stage s) {
    return static_cast<size_t>(stage_is_global(s) ? c.layers : layer) * kStages + static_cast<int>(s);
}

// B is filled stage by stage (a source may read the stages already done).
void propagate(const ModelWeights& w, const std::vector<Row>& rows, const ModelPrecision& P, Source& src, Bounds& B) {
    const ModelConfig& c = w.config;
    const Units U = units_of(P);
    const int R = static_cast<int>(rows.size()), H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn,
              hd = c.head_dim;
    B.assign(static_cast<size_t>(c.layers + 1) * kStages, {});
    auto alloc = [&](int l, Stage s) -> std::vector<double>& {
        auto& v = B[key(c, l, s)];
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
        src.err(l, s, r, B[key(c, l, s)], wdt, e.data());
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
            rope_bound(orow(r, l, Stage::q), e1.data(), c.n_q_heads, hd, c.rope_pairing, c.rope_theta, pos, U,
                       orow(r, l, Stage::q_rope), &bqr[static_cast<size_t>(r) * QD]);
            in_err(l, Stage::k, r, e1);
            rope_bound(orow(r, l, Stage::k), e1.data(), c.n_kv_heads, hd, c.rope_pairing, c.rope_theta, pos, U,
                       orow(r, l, Stage::k_rope), &bkr[static_cast<size_t>(r) * KD]);
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

// The attention problem an implementation would have seen: the oracle's
// q_rope, k_rope, v rounded to T (the a-priori local bound is evaluated on
// it; to first order its magnitudes are the implementation's).
AttentionProblem rounded_problem(const ModelConfig& c, const OracleTrace& o, int l, const ModelPrecision& P) {
    AttentionProblem pb;
    pb.n_q_heads = c.n_q_heads;
    pb.n_kv_heads = c.n_kv_heads;
    pb.head_dim = c.head_dim;
    pb.q_lens = {o.len};
    pb.kv_lens = {o.len};
    pb.q_start = {0};
    pb.kv_start = {0};
    pb.causal = true;
    pb.num_splits = P.attn_splits;
    pb.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    pb.dtype = P.store;
    auto cp = [&](Stage s, std::vector<float>& dst) {
        const auto& v = o.at(l, s);
        dst.resize(v.size());
        for (size_t i = 0; i < v.size(); ++i) dst[i] = round_to(P.store, v[i]);
    };
    cp(Stage::q_rope, pb.q);
    cp(Stage::k_rope, pb.k);
    cp(Stage::v, pb.v);
    return pb;
}

void local_from_row_bound(const RowBound& rb, int hd, double* out) {
    for (int c = 0; c < hd; ++c)
        out[c] =
            (rb.masked || (rb.meaningful && rb.finite_input)) ? (rb.masked ? 0.0 : rb.o[static_cast<size_t>(c)]) : kInf;
}

class AprioriSource final : public Source {
public:
    AprioriSource(const ModelWeights& w, const OracleTrace& o, const ModelPrecision& P, const Bounds& B)
        : w_(w), o_(o), P_(P), B_(B) {}
    void err(int, Stage, int r, const std::vector<double>& B, int width, double* out) override {
        std::copy_n(&B[static_cast<size_t>(r) * width], width, out);
    }
    void cache_err(int l, int, int j, bool v, double* out) override {
        const ModelConfig& c = w_.config;
        const auto& b = B_[key(c, l, v ? Stage::v : Stage::k_rope)];
        std::copy_n(&b[static_cast<size_t>(j) * c.kv_dim()], c.kv_dim(), out);
    }
    void attn_local(int l, int r, int h, double* out) override {
        if (pb_layer_ != l) {
            pb_ = rounded_problem(w_.config, o_, l, P_);
            pb_layer_ = l;
        }
        local_from_row_bound(bound_row(pb_, 0, h, r, P_.attn), w_.config.head_dim, out);
    }

private:
    const ModelWeights& w_;
    const OracleTrace& o_;
    const ModelPrecision& P_;
    const Bounds& B_; // the propagation's own table (filled as it goes)
    AttentionProblem pb_;
    int pb_layer_ = -1;
};

// The engine's actual errors, from its trace.
class ObservedSource final : public Source {
public:
    ObservedSource(const ModelWeights& w, const ModelTrace& et, const std::vector<Row>& rows)
        : w_(w), et_(et), rows_(rows) {}
    void err(int l, Stage s, int r, const std::vector<double>&, int width, double* out) override {
        const float* e = &et_.at(l, s)[static_cast<size_t>(r) * width];
        const double* o = rows_[static_cast<size_t>(r)].o->row(l, s, rows_[static_cast<size_t>(r)].pos, width);
        for (int i = 0; i < width; ++i) out[i] = diff(e[i], o[i]);
    }
    void cache_err(int l, int r, int j, bool v, double* out) override {
        const ModelConfig& c = w_.config;
        const AttentionProblem& pb = et_.attn[static_cast<size_t>(l)];
        const int b = problem_seq(l, r);
        const float* e = &(v ? pb.v : pb.k)[static_cast<size_t>(pb.kv_start[static_cast<size_t>(b)] + j) * c.kv_dim()];
        const double* o = rows_[static_cast<size_t>(r)].o->row(l, v ? Stage::v : Stage::k_rope, j, c.kv_dim());
        for (int i = 0; i < c.kv_dim(); ++i) out[i] = diff(e[i], o[i]);
    }
    void attn_local(int l, int r, int h, double* out) override {
        const AttentionProblem& pb = et_.attn[static_cast<size_t>(l)];
        const int b = problem_seq(l, r);
        const int t = rows_[static_cast<size_t>(r)].pos -
                      (pb.kv_lens[static_cast<size_t>(b)] - pb.q_lens[static_cast<size_t>(b)]);
        local_from_row_bound(bound_row(pb, b, h, t, et_.attn_profile[static_cast<size_t>(l)]), w_.config.head_dim, out);
    }
    static double diff(float e, double o) { return std::isfinite(e) ? std::fabs(static_cast<double>(e) - o) : kInf; }
    int problem_seq(int l, int r) const {
        const auto& ids = et_.attn_seq_ids[static_cast<size_t>(l)];
        const int slot = et_.rows[static_cast<size_t>(r)].first;
        for (size_t b = 0; b < ids.size(); ++b)
            if (ids[b] == slot) return static_cast<int>(b);
        throw std::logic_error("check_forward: a row's sequence is not in the attention problem");
    }

private:
    const ModelWeights& w_;
    const ModelTrace& et_;
    const std::vector<Row>& rows_;
};

void judge(StageCheck& sc, double eng, double orc, double b, int seq, int pos, int index) {
    ++sc.elements;
    const double err = std::fabs(eng - orc);
    double ratio;
    if (!std::isfinite(eng) && std::isfinite(orc))
        ratio = kInf;
    else if (!std::isfinite(b)) {
        ++sc.unchecked;
        return;
    } else
        ratio = err > b ? (b > 0 ? err / b : kInf) : (b > 0 ? err / b : 0.0);
    const bool bad = !(ratio <= 1.0);
    if (bad) ++sc.violations;
    // Keep the worst element; among violations, the worst one too.
    if (ratio > sc.worst_ratio || sc.index < 0) {
        sc.worst_ratio = std::max(sc.worst_ratio, ratio);
        sc.seq = seq;
        sc.pos = pos;
        sc.index = index;
        sc.engine = eng;
        sc.oracle = orc;
        sc.bound = b;
    }
}

} // namespace

DivergenceReport check_forward(const ModelWeights& w, const ModelTrace& et,
                               const std::map<int, const OracleTrace*>& oracle_by_slot, const ModelPrecision& P,
                               const CacheLedger* ledger) {
    const ModelConfig& c = w.config;
    if (et.layers != c.layers || et.values.empty())
        throw std::invalid_argument("check_forward: the engine call was not traced");
    std::vector<Row> rows;
    for (const auto& [slot, pos] : et.rows) {
        auto it = oracle_by_slot.find(slot);
        if (it == oracle_by_slot.end() || !it->second)
            throw std::invalid_argument(fmt::format("check_forward: no oracle for sequence slot {}", slot));
        if (pos >= it->second->len)
            throw std::invalid_argument(
                fmt::format("check_forward: oracle of slot {} has {} positions, the engine computed position {}", slot,
                            it->second->len, pos));
        rows.push_back({it->second, pos});
    }
    Bounds B;
    ObservedSource src(w, et, rows);
    propagate(w, rows, P, src, B);
    // A-priori bounds only for slots with cached positions no ledger covers
    // (computed lazily: on the 0.5B shape each costs a full forward).
    std::map<int, OracleTrace> apr;
    auto apriori_of = [&](int slot) -> const OracleTrace& {
        auto it = apr.find(slot);
        if (it == apr.end()) it = apr.emplace(slot, apriori_bounds(w, *oracle_by_slot.at(slot), P)).first;
        return it->second;
    };

    DivergenceReport rep;
    auto check_stage = [&](int layer, Stage s) {
        StageCheck sc;
        sc.layer = stage_is_global(s) ? (s == Stage::embed ? -1 : c.layers) : layer;
        sc.stage = s;
        if (s == Stage::kv_cache) {
            const AttentionProblem& pb = et.attn[static_cast<size_t>(layer)];
            const int KD = c.kv_dim();
            for (size_t b = 0; b < pb.kv_lens.size(); ++b) {
                const int slot = et.attn_seq_ids[static_cast<size_t>(layer)][b];
                const OracleTrace& o = *oracle_by_slot.at(slot);
                const int first_new = pb.kv_lens[b] - pb.q_lens[b];
                for (int j = 0; j < pb.kv_lens[b]; ++j) {
                    // Row of this call holding position j, if any.
                    int row = -1;
                    for (size_t r = 0; r < et.rows.size(); ++r)
                        if (et.rows[r].first == slot && et.rows[r].second == j) row = static_cast<int>(r);
                    for (int which = 0; which < 2; ++which) {
                        const Stage st = which ? Stage::v : Stage::k_rope;
                        const float* e = &(which ? pb.v : pb.k)[static_cast<size_t>(pb.kv_start[b] + j) * KD];
                        const double* orc = o.row(layer, st, j, KD);
                        const double* bnd = nullptr;
                        if (j >= first_new && row >= 0)
                            bnd = &B[key(c, layer, st)][static_cast<size_t>(row) * KD];
                        else if (ledger) {
                            const auto& m = which ? ledger->v : ledger->k;
                            auto it = m.find(slot);
                            if (it != m.end() &&
                                it->second[static_cast<size_t>(layer)].size() >= static_cast<size_t>(j + 1) * KD)
                                bnd = &it->second[static_cast<size_t>(layer)][static_cast<size_t>(j) * KD];
                        }
                        if (!bnd) bnd = apriori_of(slot).row(layer, st, j, KD);
                        for (int i = 0; i < KD; ++i) judge(sc, e[i], orc[i], bnd[i], slot, j, which * KD + i);
                    }
                }
            }
        } else {
            const int wdt = stage_width(c, s);
            const auto& ev = et.at(layer, s);
            const auto& bv = B[key(c, layer, s)];
            for (size_t r = 0; r < rows.size(); ++r) {
                const double* orc = rows[r].o->row(layer, s, rows[r].pos, wdt);
                for (int i = 0; i < wdt; ++i)
                    judge(sc, ev[r * wdt + i], orc[i], bv[r * wdt + i], et.rows[r].first, rows[r].pos, i);
            }
        }
        rep.unchecked += sc.unchecked;
        if (sc.violations && !rep.first) rep.first = sc;
        rep.stages.push_back(sc);
    };
    check_stage(c.layers, Stage::embed);
    for (int l = 0; l < c.layers; ++l)
        for (Stage s : {Stage::attn_norm, Stage::q, Stage::k, Stage::v, Stage::q_rope, Stage::k_rope, Stage::kv_cache,
                        Stage::attn_out, Stage::o_proj, Stage::resid_attn, Stage::ffn_norm, Stage::gate, Stage::up,
                        Stage::act, Stage::down, Stage::resid_ffn})
            check_stage(l, s);
    check_stage(c.layers, Stage::final_norm);
    check_stage(c.layers, Stage::logits);
    rep.ok = !rep.first.has_value();
    rep.layers = c.layers;
    rep.bounds = std::move(B);
    return rep;
}

void CacheLedger::record(const ModelConfig& c, const ModelTrace& t, const DivergenceReport& r) {
    const int KD = c.kv_dim();
    for (int which = 0; which < 2; ++which) {
        auto& m = which ? v : k;
        const Stage st = which ? Stage::v : Stage::k_rope;
        for (size_t row = 0; row < t.rows.size(); ++row) {
            const auto [slot, pos] = t.rows[row];
            auto& layers = m[slot];
            layers.resize(static_cast<size_t>(c.layers));
            for (int l = 0; l < c.layers; ++l) {
                auto& dst = layers[static_cast<size_t>(l)];
                if (dst.size() < static_cast<size_t>(pos + 1) * KD) dst.resize(static_cast<size_t>(pos + 1) * KD, kInf);
                std::copy_n(&r.bound(l, st)[row * KD], KD, &dst[static_cast<size_t>(pos) * KD]);
            }
        }
    }
}

std::string DivergenceReport::summary() const {
    if (ok) {
        double worst = 0;
        for (const auto& s : stages) worst = std::max(worst, s.worst_ratio);
        return fmt::format(
            "every stage within its bound (worst error/bound {:.3g}; {} elements without a meaningful bound)", worst,
            unchecked);
    }
    const StageCheck& f = *first;
    const std::string where = f.layer < 0 ? "embedding"
                              : f.stage == Stage::final_norm || f.stage == Stage::logits
                                  ? "head"
                                  : fmt::format("layer {}", f.layer);
    return fmt::format(
        "first divergence: {}, stage {}: {} of {} elements out of bound; worst at sequence {} position {} "
        "index {}: engine {:.9g}, oracle {:.9g}, |diff| {:.3g} > bound {:.3g} ({:.3g}x)",
        where, stage_name(f.stage), f.violations, f.elements, f.seq, f.pos, f.index, f.engine, f.oracle,
        std::fabs(f.engine - f.oracle), f.bound, f.worst_ratio);
}

std::string DivergenceReport::table() const {
    std::string s =
        fmt::format("{:>6} {:>11} {:>12} {:>10} {:>10}\n", "layer", "stage", "worst e/b", "violations", "unchecked");
    for (const auto& c : stages)
        s += fmt::format("{:>6} {:>11} {:>12.3g} {:>10} {:>10}\n", c.layer, stage_name(c.stage), c.worst_ratio,
                         c.violations, c.unchecked);
    return s;
}

bool greedy_decided(const double* z, const double* b, int vocab, int* top) {
    int t = 0;
    for (int j = 1; j < vocab; ++j)
        if (z[j] > z[t]) t = j;
    if (top) *top = t;
    for (int j = 0; j < vocab; ++j)
        if (j != t && !(z[t] - b[t] > z[j] + b[j])) return false;
    return true;
}

ModelPrecision model_precision(const ModelConfig& c, Backend b) {
    ModelPrecision p;
    p.store = c.dtype;
    p.u_gemm = (b == Backend::cuda && c.dtype != DType::f32) ? 0x1p-23 : 0x1p-24;
    p.u_elem = 0x1p-24;
    // A profile that rounds at least as much as every attention family:
    // P stored in T, O in T, exp2-style 4 ulps, short tiles and a split merge.
    p.attn.input = c.dtype;
    p.attn.u_acc = p.u_gemm;
    p.attn.probs_stored = c.dtype != DType::f32;
    p.attn.store = c.dtype;
    p.attn.output = c.dtype;
    p.attn.exp_ulps = 4.0;
    p.attn.kv_tile = 16;
    p.attn.uses_splits = true;
    p.attn_splits = 8;
    return p;
}

ModelPrecision transformers_fp32_precision(const ModelConfig& c) {
    ModelConfig c32 = c;
    c32.dtype = DType::f32;
    ModelPrecision p = model_precision(c32, Backend::cpu);
    // inv_freq = 1 / theta^(2i/d) in fp32 (pow, division: a few ulps) and
    // the angle pos * inv_freq (one more): 8 u relative to the angle.
    p.rope_angle_rel = 8.0 * 0x1p-24;
    return p;
}

PrecisionProfile transformers_fp32_attention_profile() {
    PrecisionProfile p;
    p.input = DType::f32;
    p.u_acc = 0x1p-24;
    p.scores_stored = false;
    p.probs_stored = false;
    p.store = DType::f32;
    p.output = DType::f32;
    p.exp_ulps = 4.0; // vectorized expf (SLEEF-style, <= 1 ulp documented); 4 declared
    p.kv_tile = 16;   // eager is one pass; the CPU SDPA kernel tiles keys
    p.uses_splits = false;
    return p;
}

ModelTrace trace_from_json(const ModelConfig& c, const std::string& text, const PrecisionProfile& prof,
                           std::vector<int>* tokens) {
    using nlohmann::json;
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw std::invalid_argument(std::string("trace: not valid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("tokens") || !j.at("tokens").is_array())
        throw std::invalid_argument("trace: no \"tokens\" array");
    std::vector<int> toks;
    for (const json& t : j.at("tokens")) {
        if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() >= c.vocab)
            throw std::invalid_argument(fmt::format("trace: token {} outside the vocabulary", t.dump()));
        toks.push_back(t.get<int>());
    }
    if (toks.empty()) throw std::invalid_argument("trace: no tokens");
    const int n = static_cast<int>(toks.size());
    std::vector<std::pair<int, int>> rows;
    for (int i = 0; i < n; ++i) rows.push_back({0, i});
    ModelTrace t;
    t.init(c, rows);
    auto read = [&](const json& obj, const char* name, Stage s, int layer, const std::string& where) {
        if (!obj.contains(name)) throw std::invalid_argument(fmt::format("trace: {} has no \"{}\"", where, name));
        const json& a = obj.at(name);
        const int w = stage_width(c, s);
        if (!a.is_array() || static_cast<int>(a.size()) != n)
            throw std::invalid_argument(fmt::format("trace: {} \"{}\" must be {} rows", where, name, n));
        std::vector<float>& dst = t.at(layer, s);
        for (int r = 0; r < n; ++r) {
            const json& row = a.at(static_cast<size_t>(r));
            if (!row.is_array() || static_cast<int>(row.size()) != w)
                throw std::invalid_argument(
                    fmt::format("trace: {} \"{}\" row {} must have {} values", where, name, r, w));
            for (int i = 0; i < w; ++i) {
                const json& x = row.at(static_cast<size_t>(i));
                // null stands for a non-finite value (JSON has no inf/NaN).
                dst[static_cast<size_t>(r) * w + i] =
                    x.is_number() ? x.get<float>() : std::numeric_limits<float>::quiet_NaN();
            }
        }
    };
    read(j, "embed", Stage::embed, c.layers, "top level");
    if (!j.contains("layers") || !j.at("layers").is_array() || static_cast<int>(j.at("layers").size()) != c.layers)
        throw std::invalid_argument(fmt::format("trace: \"layers\" must be an array of {} objects", c.layers));
    for (int l = 0; l < c.layers; ++l) {
        const json& L = j.at("layers").at(static_cast<size_t>(l));
        const std::string where = fmt::format("layer {}", l);
        for (Stage s : {Stage::attn_norm, Stage::q, Stage::k, Stage::v, Stage::q_rope, Stage::k_rope, Stage::attn_out,
                        Stage::o_proj, Stage::resid_attn, Stage::ffn_norm, Stage::gate, Stage::up, Stage::act,
                        Stage::down, Stage::resid_ffn})
            read(L, stage_name(s), s, l, where);
        AttentionProblem pb;
        pb.n_q_heads = c.n_q_heads;
        pb.n_kv_heads = c.n_kv_heads;
        pb.head_dim = c.head_dim;
        pb.q_lens = {n};
        pb.kv_lens = {n};
        pb.q_start = {0};
        pb.kv_start = {0};
        pb.causal = true;
        pb.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
        pb.dtype = DType::f32;
        pb.q = t.at(l, Stage::q_rope);
        pb.k = t.at(l, Stage::k_rope);
        pb.v = t.at(l, Stage::v);
        t.attn[static_cast<size_t>(l)] = std::move(pb);
        t.attn_seq_ids[static_cast<size_t>(l)] = {0};
        t.attn_target[static_cast<size_t>(l)] = "external";
        t.attn_profile[static_cast<size_t>(l)] = prof;
    }
    read(j, "final_norm", Stage::final_norm, c.layers, "top level");
    read(j, "logits", Stage::logits, c.layers, "top level");
    if (tokens) *tokens = toks;
    return t;
}

std::string trace_to_json(const ModelConfig& c, const ModelTrace& t, const std::vector<int>& tokens) {
    using nlohmann::json;
    const int n = static_cast<int>(t.rows.size());
    auto rows = [&](int layer, Stage s) {
        const int w = stage_width(c, s);
        json a = json::array();
        for (int r = 0; r < n; ++r) {
            json row = json::array();
            for (int i = 0; i < w; ++i) {
                const float x = t.at(layer, s)[static_cast<size_t>(r) * w + i];
                row.push_back(std::isfinite(x) ? json(x) : json());
            }
            a.push_back(std::move(row));
        }
        return a;
    };
    json j;
    j["tokens"] = tokens;
    j["embed"] = rows(c.layers, Stage::embed);
    j["layers"] = json::array();
    for (int l = 0; l < c.layers; ++l) {
        json L;
        for (Stage s : {Stage::attn_norm, Stage::q, Stage::k, Stage::v, Stage::q_rope, Stage::k_rope, Stage::attn_out,
                        Stage::o_proj, Stage::resid_attn, Stage::ffn_norm, Stage::gate, Stage::up, Stage::act,
                        Stage::down, Stage::resid_ffn})
            L[stage_name(s)] = rows(l, s);
        j["layers"].push_back(std::move(L));
    }
    j["final_norm"] = rows(c.layers, Stage::final_norm);
    j["logits"] = rows(c.layers, Stage::logits);
    return j.dump();
}

OracleTrace apriori_bounds(const ModelWeights& w, const OracleTrace& o, const ModelPrecision& P) {
    std::vector<Row> rows;
    for (int i = 0; i < o.len; ++i) rows.push_back({&o, i});
    Bounds B;
    AprioriSource src(w, o, P, B);
    propagate(w, rows, P, src, B);
    OracleTrace out;
    out.layers = o.layers;
    out.len = o.len;
    out.tokens = o.tokens;
    out.values = std::move(B);
    return out;
}

} // namespace attncheck
