// A second fp64 reference, written independently of reference_attention.hpp:
// the visible keys of a row are derived as one contiguous range [lo, hi)
// rather than tested key by key, and the softmax is computed online over
// tiles of keys with a running (max, sum, accumulator) rescaled at each new
// maximum, the way flash kernels do it. Agreement between the two (to about
// 1e-12 relative on well-conditioned cases) is evidence that neither shares a
// mistake in masking or normalization (bug class 14: the oracle itself is
// wrong).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/case/problem.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

// Visible keys of query i form [lo, hi).
struct KeyRange {
    long long lo, hi;
};
inline KeyRange tiled_key_range(const AttentionProblem& p, int seq, int i) {
    const long long n = p.kv_lens[seq];
    if (!p.causal) return {0, n};
    // Bottom-right alignment: the last query row sees all n keys.
    const long long offset = n - p.q_lens[seq];
    long long hi = std::min(n, offset + i + 1);
    long long lo = p.window > 0 ? std::max(0LL, offset + i + 1 - p.window) : 0;
    if (hi < 0) hi = 0;
    if (lo > hi) lo = hi;
    return {lo, hi};
}

inline ReferenceOutput tiled_reference_attention(const AttentionProblem& pb, int tile = 16) {
    ReferenceOutput out;
    out.o.assign(pb.q.size(), 0.0);
    out.lse.assign(static_cast<size_t>(pb.total_q()) * pb.n_q_heads, 0.0);
    const int d = pb.head_dim;
    std::vector<double> acc(static_cast<size_t>(d));
    for (int b = 0; b < pb.batch(); ++b)
        for (int h = 0; h < pb.n_q_heads; ++h) {
            const int kvh = h * pb.n_kv_heads / pb.n_q_heads; // same map, other arithmetic
            for (int t = 0; t < pb.q_lens[b]; ++t) {
                const KeyRange kr = tiled_key_range(pb, b, t);
                const float* q = &pb.q[pb.q_index(b, t, h)];
                double m = -std::numeric_limits<double>::infinity(), l = 0.0;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (long long j0 = kr.lo; j0 < kr.hi; j0 += tile) {
                    const long long j1 = std::min(kr.hi, j0 + tile);
                    std::vector<double> s(static_cast<size_t>(j1 - j0));
                    double tile_max = -std::numeric_limits<double>::infinity();
                    for (long long j = j0; j < j1; ++j) {
                        const float* k = &pb.k[pb.kv_index(b, static_cast<int>(j), kvh)];
                        double dot = 0.0;
                        for (int c = 0; c < d; ++c) dot += static_cast<double>(q[c]) * k[c];
                        s[j - j0] = dot * pb.scale;
                        tile_max = std::max(tile_max, s[j - j0]);
                    }
                    const double m_new = std::max(m, tile_max);
                    const double rescale = std::exp(m - m_new); // exp(-inf) = 0 on the first tile
                    l *= rescale;
                    for (double& a : acc) a *= rescale;
                    for (long long j = j0; j < j1; ++j) {
                        const double e = std::exp(s[j - j0] - m_new);
                        l += e;
                        const float* v = &pb.v[pb.kv_index(b, static_cast<int>(j), kvh)];
                        for (int c = 0; c < d; ++c) acc[c] += e * v[c];
                    }
                    m = m_new;
                }
                double* o = &out.o[pb.o_index(b, t, h)];
                if (kr.hi == kr.lo) {
                    out.lse[pb.lse_index(b, t, h)] = -std::numeric_limits<double>::infinity();
                    continue; // O stays 0
                }
                for (int c = 0; c < d; ++c) o[c] = acc[c] / l;
                out.lse[pb.lse_index(b, t, h)] = m + std::log(l);
            }
        }
    return out;
}

} // namespace attncheck
