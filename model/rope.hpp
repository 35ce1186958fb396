// RoPE geometry shared by the engines and the oracle: which channels form a
// rotation pair and at what frequency. Pair i (0 <= i < head_dim/2) rotates
// by angle pos * theta^(-2i/head_dim); rotate_half pairs channel i with
// i + head_dim/2 (Hugging Face), interleaved pairs 2i with 2i+1 (Meta, GGUF).
// Angles and their cos/sin are computed in fp64 and the engines round
// cos/sin to fp32 once (|error| <= 2^-24 |value| + 1e-15 (pos + 1)), so the
// table error is known to the error model; transformers computes the angle
// in fp32 instead, which the cross-check bound accounts for separately.
#pragma once

#include <cmath>
#include <utility>
#include <vector>

#include "model/model_config.hpp"

namespace attncheck {

inline std::pair<int, int> rope_pair(RopePairing p, int head_dim, int i) {
    return p == RopePairing::rotate_half ? std::pair<int, int>{i, i + head_dim / 2}
                                         : std::pair<int, int>{2 * i, 2 * i + 1};
}

inline double rope_inv_freq(double theta, int head_dim, int i) {
    return std::pow(theta, -2.0 * i / static_cast<double>(head_dim));
}

// cos and sin for one position, fp64: [head_dim/2] each.
inline void rope_angles(double theta, int head_dim, long long pos, std::vector<double>& c, std::vector<double>& s) {
    const int half = head_dim / 2;
    c.resize(static_cast<size_t>(half));
    s.resize(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
        const double a = static_cast<double>(pos) * rope_inv_freq(theta, head_dim, i);
        c[static_cast<size_t>(i)] = std::cos(a);
        s[static_cast<size_t>(i)] = std::sin(a);
    }
}

} // namespace attncheck
