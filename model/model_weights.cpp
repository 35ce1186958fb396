// Deterministic random decoder weights (see model_weights.hpp).
#include "model/model_weights.hpp"

#include <cmath>

#include <fmt/format.h>

#include "engine/case/rng.hpp"

namespace attncheck {

namespace {

enum : std::uint64_t { kEmbed = 1, kLmHead, kFinalNorm, kAttnNorm, kFfnNorm, kWqkv, kBqkv, kWo, kGate, kUp, kDown };

std::uint64_t tag(int layer, std::uint64_t what) { return (static_cast<std::uint64_t>(layer + 1) << 8) | what; }

std::vector<float> normal(const Rng& root, std::uint64_t t, size_t n, double mean, double std, DType dt) {
    Rng r = root.fork(t);
    std::vector<float> v(n);
    for (auto& x : v) x = round_to(dt, mean + std * r.normal());
    return v;
}

} // namespace

ModelWeights random_weights(const ModelConfig& c, const RandomWeightOptions& o) {
    validate(c);
    for (int ch : o.massive_channels)
        if (ch < 0 || ch >= c.hidden)
            throw ConfigError(fmt::format("random weights: massive channel {} outside [0, {})", ch, c.hidden));
    const Rng root(o.seed);
    const DType dt = c.dtype;
    const size_t h = static_cast<size_t>(c.hidden);
    ModelWeights w;
    w.config = c;
    w.embed = normal(root, tag(-1, kEmbed), static_cast<size_t>(c.vocab) * h, 0.0, o.embed_std, dt);
    for (int ch : o.massive_channels)
        for (int t = 0; t < c.vocab; ++t) {
            float& x = w.embed[static_cast<size_t>(t) * h + ch];
            x = round_to(dt, static_cast<double>(x) + o.massive_value);
        }
    if (!c.tied_embeddings)
        w.lm_head = normal(root, tag(-1, kLmHead), static_cast<size_t>(c.vocab) * h, 0.0, o.proj_std, dt);
    w.final_norm = normal(root, tag(-1, kFinalNorm), h, 1.0, o.norm_gain_jitter, dt);
    w.layers.resize(static_cast<size_t>(c.layers));
    for (int l = 0; l < c.layers; ++l) {
        LayerWeights& L = w.layers[static_cast<size_t>(l)];
        L.attn_norm = normal(root, tag(l, kAttnNorm), h, 1.0, o.norm_gain_jitter, dt);
        L.ffn_norm = normal(root, tag(l, kFfnNorm), h, 1.0, o.norm_gain_jitter, dt);
        L.wqkv = normal(root, tag(l, kWqkv), static_cast<size_t>(c.qkv_dim()) * h, 0.0, o.proj_std, dt);
        if (c.qkv_bias) {
            L.bqkv = normal(root, tag(l, kBqkv), static_cast<size_t>(c.qkv_dim()), 0.0, o.bias_std, dt);
            if (o.qk_bias_norm > 0) {
                // Q heads then K heads: rescale each head's bias to the norm.
                for (int hd = 0; hd < c.n_q_heads + c.n_kv_heads; ++hd) {
                    float* b = &L.bqkv[static_cast<size_t>(hd) * c.head_dim];
                    double n2 = 0;
                    for (int i = 0; i < c.head_dim; ++i) n2 += static_cast<double>(b[i]) * b[i];
                    const double f = n2 > 0 ? o.qk_bias_norm / std::sqrt(n2) : 0.0;
                    for (int i = 0; i < c.head_dim; ++i) b[i] = round_to(dt, b[i] * f);
                }
            }
        }
        L.wo = normal(root, tag(l, kWo), h * c.q_dim(), 0.0, o.proj_std, dt);
        L.w_gate = normal(root, tag(l, kGate), static_cast<size_t>(c.ffn) * h, 0.0, o.proj_std, dt);
        L.w_up = normal(root, tag(l, kUp), static_cast<size_t>(c.ffn) * h, 0.0, o.proj_std, dt);
        L.w_down = normal(root, tag(l, kDown), h * c.ffn, 0.0, o.proj_std, dt);
    }
    validate(w);
    return w;
}

void validate(const ModelWeights& w) {
    const ModelConfig& c = w.config;
    validate(c);
    auto check = [&](const std::string& name, const std::vector<float>& v, size_t n) {
        if (v.size() != n)
            throw ConfigError(fmt::format("weights: {} has {} values, the config needs {}", name, v.size(), n));
        for (size_t i = 0; i < n; ++i)
            if (!std::isfinite(v[i]) || round_to(c.dtype, v[i]) != v[i])
                throw ConfigError(
                    fmt::format("weights: {}[{}] = {} is not a finite {} value", name, i, v[i], dtype_name(c.dtype)));
    };
    const size_t h = static_cast<size_t>(c.hidden);
    check("embed", w.embed, static_cast<size_t>(c.vocab) * h);
    check("lm_head", w.lm_head, c.tied_embeddings ? 0 : static_cast<size_t>(c.vocab) * h);
    check("final_norm", w.final_norm, h);
    if (w.layers.size() != static_cast<size_t>(c.layers))
        throw ConfigError(fmt::format("weights: {} layers, the config says {}", w.layers.size(), c.layers));
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = fmt::format("layer {} ", l);
        check(p + "attn_norm", L.attn_norm, h);
        check(p + "ffn_norm", L.ffn_norm, h);
        check(p + "wqkv", L.wqkv, static_cast<size_t>(c.qkv_dim()) * h);
        check(p + "bqkv", L.bqkv, c.qkv_bias ? static_cast<size_t>(c.qkv_dim()) : 0);
        check(p + "wo", L.wo, h * c.q_dim());
        check(p + "w_gate", L.w_gate, static_cast<size_t>(c.ffn) * h);
        check(p + "w_up", L.w_up, static_cast<size_t>(c.ffn) * h);
        check(p + "w_down", L.w_down, h * c.ffn);
    }
}

} // namespace attncheck
