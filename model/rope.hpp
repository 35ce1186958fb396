// RoPE geometry shared by the engines and the error model: which channels
// form a rotation pair and at what frequency. Pair i (0 <= i < head_dim/2)
// rotates by angle pos * theta^(-2i/head_dim), scaled as the config's
// rope_scaling says; rotate_half pairs channel i with
// i + head_dim/2 (Hugging Face), interleaved pairs 2i with 2i+1 (Meta, GGUF).
// Angles and their cos/sin are computed in fp64 and the engines round
// cos/sin to fp32 once (|error| <= 2^-24 |value| + 1e-15 (pos + 1)), so the
// table error is known to the error model; transformers computes the angle
// in fp32 instead, which the cross-check bound accounts for separately.
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "model/model_config.hpp"

namespace attncheck {

inline std::pair<int, int> rope_pair(RopePairing p, int head_dim, int i) {
    return p == RopePairing::rotate_half ? std::pair<int, int>{i, i + head_dim / 2}
                                         : std::pair<int, int>{2 * i, 2 * i + 1};
}

// Inverse frequency of pair i, with the config's scaling, by transformers'
// definitions (RopeScaling in model_config.hpp; the oracle writes them out
// again on its own, model/oracle/model_oracle.hpp).
inline double rope_inv_freq(const ModelConfig& c, int i) {
    const double d = c.head_dim;
    const double base = std::pow(c.rope_theta, -2.0 * i / d);
    const RopeScaling& s = c.rope_scaling;
    constexpr double kTwoPi = 6.283185307179586;
    switch (s.type) {
        case RopeScalingType::linear:
            return base / s.factor;
        case RopeScalingType::llama3: {
            const double wavelen = kTwoPi / base;
            if (wavelen < s.original_max / s.high_freq_factor) return base;
            if (wavelen > s.original_max / s.low_freq_factor) return base / s.factor;
            const double smooth =
                (s.original_max / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
            return (1 - smooth) * base / s.factor + smooth * base;
        }
        case RopeScalingType::yarn: {
            // The dims whose rotation count at original_max lies between
            // beta_slow and beta_fast blend interpolation into extrapolation.
            auto correction_dim = [&](double rotations) {
                return d * std::log(s.original_max / (rotations * kTwoPi)) / (2 * std::log(c.rope_theta));
            };
            const double low = std::max(std::floor(correction_dim(s.beta_fast)), 0.0);
            double high = std::min(std::ceil(correction_dim(s.beta_slow)), d - 1);
            if (low == high) high += 0.001;
            const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
            const double extrapolation = 1 - ramp;
            return base / s.factor * (1 - extrapolation) + base * extrapolation;
        }
        default:
            return base;
    }
}

// The factor cos and sin are multiplied by: yarn's attention factor, else 1.
inline double rope_attention_factor(const ModelConfig& c) {
    const RopeScaling& s = c.rope_scaling;
    if (s.type != RopeScalingType::yarn) return 1.0;
    if (s.attention_factor > 0) return s.attention_factor;
    return s.factor <= 1 ? 1.0 : 0.1 * std::log(s.factor) + 1.0;
}

// cos and sin (times the attention factor) for one position, fp64: [head_dim/2] each.
inline void rope_angles(const ModelConfig& cfg, long long pos, std::vector<double>& c, std::vector<double>& s) {
    const int half = cfg.head_dim / 2;
    const double m = rope_attention_factor(cfg);
    c.resize(static_cast<size_t>(half));
    s.resize(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
        const double a = static_cast<double>(pos) * rope_inv_freq(cfg, i);
        c[static_cast<size_t>(i)] = m * std::cos(a);
        s[static_cast<size_t>(i)] = m * std::sin(a);
    }
}

// The engines' cos/sin tables: fp32 from fp64, [rows][head_dim/2] each, for
// the positions of a call's rows ((slot, position) pairs).
inline void rope_tables(const ModelConfig& cfg, const std::vector<std::pair<int, int>>& rows, std::vector<float>& cosv,
                        std::vector<float>& sinv) {
    const size_t half = static_cast<size_t>(cfg.head_dim / 2);
    cosv.assign(rows.size() * half, 0.0f);
    sinv.assign(rows.size() * half, 0.0f);
    std::vector<double> cd, sd;
    for (size_t r = 0; r < rows.size(); ++r) {
        rope_angles(cfg, rows[r].second, cd, sd);
        for (size_t i = 0; i < half; ++i) {
            cosv[r * half + i] = static_cast<float>(cd[i]);
            sinv[r * half + i] = static_cast<float>(sd[i]);
        }
    }
}

} // namespace attncheck
