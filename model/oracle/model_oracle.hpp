// The model oracle: the decoder's forward computed the textbook way, in a
// wide number type (fp64; Boost cpp_bin_float_50 for tiny configurations),
// from the exact rounded weights and the tokens, with nothing rounded to the
// weight dtype anywhere. It recomputes a sequence from scratch -- all
// positions, no cache -- so a KV-cache bug in an engine cannot be shared by
// the oracle. Every stage of every position is kept (the per-layer trace the
// divergence report compares against, see model_oracle_check.hpp).
//
// Written independently of the engines: plain loops, attention as
// softmax(q.k * scale) over the causal prefix, RoPE from its definition.
#pragma once

#include <algorithm>

#include <boost/math/constants/constants.hpp>

#include <cmath>
#include <vector>

#include "model/model_trace.hpp"
#include "model/model_weights.hpp"

namespace attncheck {

// Stage values of one sequence, every position: values[slot * kStages +
// stage] is [len][width] (kv_cache stays empty: the cache of the oracle is
// k_rope and v themselves). Converted to double at the end.
struct OracleTrace {
    int layers = 0, len = 0;
    std::vector<int> tokens;
    std::vector<std::vector<double>> values;
    std::vector<double>& at(int layer, Stage s) {
        return values[static_cast<size_t>(stage_is_global(s) ? layers : layer) * kStages + static_cast<int>(s)];
    }
    const std::vector<double>& at(int layer, Stage s) const {
        return values[static_cast<size_t>(stage_is_global(s) ? layers : layer) * kStages + static_cast<int>(s)];
    }
    const double* row(int layer, Stage s, int pos, int width) const {
        return &at(layer, s)[static_cast<size_t>(pos) * width];
    }
};

template <class Real>
OracleTrace model_oracle_forward_t(const ModelWeights& w, const std::vector<int>& tokens) {
    using std::exp;
    using std::sqrt;
    const ModelConfig& c = w.config;
    const int n = static_cast<int>(tokens.size()), H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn,
              hd = c.head_dim, half = hd / 2;
    OracleTrace tr;
    tr.layers = c.layers;
    tr.len = n;
    tr.tokens = tokens;
    tr.values.assign(static_cast<size_t>(c.layers + 1) * kStages, {});
    auto put = [&](int layer, Stage s, const std::vector<Real>& v) {
        auto& dst = tr.at(layer, s);
        dst.resize(v.size());
        for (size_t i = 0; i < v.size(); ++i) dst[i] = static_cast<double>(v[i]);
    };
    auto linear = [&](const std::vector<float>& W, int out, int in, const std::vector<Real>& x, const float* bias) {
        std::vector<Real> y(static_cast<size_t>(n) * out, Real(0));
        for (int r = 0; r < n; ++r)
            for (int j = 0; j < out; ++j) {
                Real acc(0);
                for (int i = 0; i < in; ++i)
                    acc += Real(W[static_cast<size_t>(j) * in + i]) * x[static_cast<size_t>(r) * in + i];
                if (bias) acc += Real(bias[j]);
                y[static_cast<size_t>(r) * out + j] = acc;
            }
        return y;
    };
    auto norm = [&](const std::vector<float>& g, const std::vector<Real>& x) {
        std::vector<Real> y(x.size());
        for (int r = 0; r < n; ++r) {
            Real ss(0);
            for (int i = 0; i < H; ++i) ss += x[static_cast<size_t>(r) * H + i] * x[static_cast<size_t>(r) * H + i];
            const Real inv = Real(1) / sqrt(ss / Real(H) + Real(c.rms_eps));
            for (int i = 0; i < H; ++i)
                y[static_cast<size_t>(r) * H + i] =
                    Real(g[static_cast<size_t>(i)]) * x[static_cast<size_t>(r) * H + i] * inv;
        }
        return y;
    };
    // RoPE inverse frequencies, evaluated in Real from transformers'
    // definitions of the scalings (written out here rather than shared with
    // model/rope.hpp, so that a slip there is not the oracle's). yarn's
    // correction dims are integers after floor and ceil: double is exact
    // enough for them.
    auto inv_freq = [&](int i) -> Real {
        using std::pow;
        const Real f0 = pow(Real(c.rope_theta), Real(-2 * i) / Real(hd));
        const RopeScaling& rs = c.rope_scaling;
        const Real two_pi = Real(2) * boost::math::constants::pi<Real>();
        if (rs.type == RopeScalingType::linear) return f0 / Real(rs.factor);
        if (rs.type == RopeScalingType::llama3) {
            const Real wavelen = two_pi / f0;
            const Real low_wavelen = Real(rs.original_max) / Real(rs.low_freq_factor);
            const Real high_wavelen = Real(rs.original_max) / Real(rs.high_freq_factor);
            if (wavelen > low_wavelen) return f0 / Real(rs.factor);
            if (wavelen < high_wavelen) return f0;
            const Real smooth = (Real(rs.original_max) / wavelen - Real(rs.low_freq_factor)) /
                                (Real(rs.high_freq_factor) - Real(rs.low_freq_factor));
            return (Real(1) - smooth) * f0 / Real(rs.factor) + smooth * f0;
        }
        if (rs.type == RopeScalingType::yarn) {
            const double dim = hd, pi2 = 6.283185307179586;
            const double lo = std::max(
                0.0, std::floor(dim * std::log(rs.original_max / (rs.beta_fast * pi2)) / (2 * std::log(c.rope_theta))));
            double hi = std::min(dim - 1, std::ceil(dim * std::log(rs.original_max / (rs.beta_slow * pi2)) /
                                                    (2 * std::log(c.rope_theta))));
            if (hi == lo) hi += 0.001;
            const double ramp = std::min(1.0, std::max(0.0, (i - lo) / (hi - lo)));
            const Real keep = Real(1) - Real(ramp); // the extrapolation (unscaled) share
            return f0 / Real(rs.factor) * (Real(1) - keep) + f0 * keep;
        }
        return f0;
    };
    // yarn multiplies cos and sin by its attention factor.
    const Real mscale = [&]() -> Real {
        using std::log;
        const RopeScaling& rs = c.rope_scaling;
        if (rs.type != RopeScalingType::yarn) return Real(1);
        if (rs.attention_factor > 0) return Real(rs.attention_factor);
        return rs.factor <= 1 ? Real(1) : Real(1) / Real(10) * log(Real(rs.factor)) + Real(1);
    }();
    auto rope = [&](const std::vector<Real>& x, int heads) {
        using std::cos;
        using std::sin;
        std::vector<Real> y(x.size());
        for (int r = 0; r < n; ++r)
            for (int i = 0; i < half; ++i) {
                const Real ang = Real(r) * inv_freq(i);
                const Real cs = mscale * cos(ang), sn = mscale * sin(ang);
                // Written out here rather than shared with the engines, so
                // a pairing bug in model/rope.hpp is not the oracle's.
                const int a = c.rope_pairing == RopePairing::rotate_half ? i : 2 * i;
                const int b = c.rope_pairing == RopePairing::rotate_half ? i + half : 2 * i + 1;
                for (int h = 0; h < heads; ++h) {
                    const size_t base = (static_cast<size_t>(r) * heads + h) * hd;
                    y[base + a] = x[base + a] * cs - x[base + b] * sn;
                    y[base + b] = x[base + b] * cs + x[base + a] * sn;
                }
            }
        return y;
    };

    std::vector<Real> h(static_cast<size_t>(n) * H);
    for (int r = 0; r < n; ++r)
        for (int i = 0; i < H; ++i)
            h[static_cast<size_t>(r) * H + i] = Real(w.embed[static_cast<size_t>(tokens[r]) * H + i]);
    put(c.layers, Stage::embed, h);
    const Real scale = Real(1) / sqrt(Real(hd));
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        auto xn = norm(L.attn_norm, h);
        put(l, Stage::attn_norm, xn);
        const bool b = c.qkv_bias;
        auto qkv = linear(L.wqkv, c.qkv_dim(), H, xn, b ? L.bqkv.data() : nullptr);
        std::vector<Real> q(static_cast<size_t>(n) * QD), k(static_cast<size_t>(n) * KD),
            v(static_cast<size_t>(n) * KD);
        for (int r = 0; r < n; ++r) {
            const size_t row = static_cast<size_t>(r) * c.qkv_dim();
            for (int j = 0; j < QD; ++j) q[static_cast<size_t>(r) * QD + j] = qkv[row + j];
            for (int j = 0; j < KD; ++j) k[static_cast<size_t>(r) * KD + j] = qkv[row + QD + j];
            for (int j = 0; j < KD; ++j) v[static_cast<size_t>(r) * KD + j] = qkv[row + QD + KD + j];
        }
        put(l, Stage::q, q);
        put(l, Stage::k, k);
        put(l, Stage::v, v);
        auto qr = rope(q, c.n_q_heads), kr = rope(k, c.n_kv_heads);
        put(l, Stage::q_rope, qr);
        put(l, Stage::k_rope, kr);
        std::vector<Real> att(static_cast<size_t>(n) * QD, Real(0));
        const int group = c.n_q_heads / c.n_kv_heads;
        for (int r = 0; r < n; ++r)
            for (int hq = 0; hq < c.n_q_heads; ++hq) {
                const int kh = hq / group;
                std::vector<Real> s(static_cast<size_t>(r + 1));
                Real mx = Real(-1e300);
                for (int j = 0; j <= r; ++j) {
                    Real dot(0);
                    for (int ch = 0; ch < hd; ++ch)
                        dot += qr[(static_cast<size_t>(r) * c.n_q_heads + hq) * hd + ch] *
                               kr[(static_cast<size_t>(j) * c.n_kv_heads + kh) * hd + ch];
                    s[static_cast<size_t>(j)] = dot * scale;
                    if (s[static_cast<size_t>(j)] > mx) mx = s[static_cast<size_t>(j)];
                }
                Real sum(0);
                for (auto& x : s) sum += (x = exp(x - mx));
                for (int j = 0; j <= r; ++j)
                    for (int ch = 0; ch < hd; ++ch)
                        att[(static_cast<size_t>(r) * c.n_q_heads + hq) * hd + ch] +=
                            s[static_cast<size_t>(j)] / sum * v[(static_cast<size_t>(j) * c.n_kv_heads + kh) * hd + ch];
            }
        put(l, Stage::attn_out, att);
        auto o = linear(L.wo, H, QD, att, nullptr);
        put(l, Stage::o_proj, o);
        for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
        put(l, Stage::resid_attn, h);
        auto xn2 = norm(L.ffn_norm, h);
        put(l, Stage::ffn_norm, xn2);
        auto g = linear(L.w_gate, F, H, xn2, nullptr), u = linear(L.w_up, F, H, xn2, nullptr);
        put(l, Stage::gate, g);
        put(l, Stage::up, u);
        std::vector<Real> a(g.size());
        for (size_t i = 0; i < g.size(); ++i) a[i] = g[i] / (Real(1) + exp(-g[i])) * u[i];
        put(l, Stage::act, a);
        auto d = linear(L.w_down, H, F, a, nullptr);
        put(l, Stage::down, d);
        for (size_t i = 0; i < h.size(); ++i) h[i] += d[i];
        put(l, Stage::resid_ffn, h);
    }
    auto xf = norm(w.final_norm, h);
    put(c.layers, Stage::final_norm, xf);
    put(c.layers, Stage::logits, linear(w.lm_head_matrix(), c.vocab, H, xf, nullptr));
    return tr;
}

// fp64 instantiation (compiled once, in model_oracle.cpp).
OracleTrace model_oracle_forward(const ModelWeights& w, const std::vector<int>& tokens);

} // namespace attncheck
