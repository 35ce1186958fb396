// CPU twin of kernels/decode/decode.cu: one query token per sequence against its KV
// cache, with the same online softmax over the same key tiles as the CUDA
// kernel, so that a bug class shows up identically on both backends.
//
// Per row (sequence, q head): the tiles are the kTile-key blocks of the
// cache, aligned to key 0, that cover the row's key range [lo, hi). Every
// key of those tiles gets a score; keys the mask hides take masked_score<M>()
// (so a finite sentinel reaches the softmax as it would in a real kernel).
// Per tile: tile max, new running max m, rescale of (l, acc) by
// exp(m_old - m_new), then exps, row sum and P.V in key order. O = acc / l,
// rounded to the input dtype where CUDA stores it in T; LSE = m + log(l). A
// row whose running max is still -inf after its tiles (no key at all, or
// every score -inf) gives O = 0 and LSE = -inf.
//
// The CUDA dot product sums channels in another order (lane-strided, then a
// butterfly); both are fp32 and inside the same declared profile.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "engine/targets/guarded_buffer.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/decode_rules.hpp"
#include "kernels/common/host_observation.hpp"
#include "kernels/common/paged_kv_rows.hpp"
#include "kernels/common/probe_trace.hpp"
#include "kernels/decode/decode.hpp"

namespace attncheck::kernels {

namespace {

// Keys per online-softmax tile; must equal kTile in kernels/decode/decode.cu (the
// declared profile's kv_tile, and the tile grid the probe reports).
constexpr int kTile = 64;
// Largest head_dim the CUDA kernel's channel ownership covers (2 channels per
// thread of 128); the twin rejects the same.
constexpr int kMaxHeadDim = kDecodeMaxHeadDim;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <Mutant M>
void decode_row(const AttentionProblem& p, const KvRowsHost& kv, const AttnShape& s, int seq, int head, float* o,
                float* lse, ProbeTrace* tr) {
    const int d = p.head_dim, kv_len = p.kv_lens[seq];
    const int kvh = kv_head_of<M>(s, head);
    const int vh = v_head_of<M>(s, kvh);
    const auto [pos, lo, hi, first_visible, scale] = decode_row_keys<M>(s, kv_len);

    std::vector<float> q(d), acc(d, 0.0f);
    const float* qrow = &p.q[p.q_index(seq, 0, head)];
    for (int c = 0; c < d; ++c) q[c] = q_loaded<M>(qrow[c], c);

    float m = kNegInf, l = 0.0f;
    float sc[kTile], pt[kTile];
    int t_begin, t_end;
    covering_tiles(lo, hi, kTile, t_begin, t_end);
    for (int t = t_begin; t < t_end; ++t) {
        const int j0 = t * kTile, n = std::min(kTile, kv_len - j0);
        // Scores of every key of the tile; hidden keys take the masked value.
        for (int jj = 0; jj < n; ++jj) {
            const int j = j0 + jj;
            const float* k = kv.k + kv_row_offset<M>(kv.view, p.kv_start[seq], seq, j, kvh, p.n_kv_heads, d);
            float dot = 0.0f;
            for (int c = 0; c < d; ++c) dot += q[c] * k[c];
            const float scaled = dot * scale;
            sc[jj] = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
            if (tr) {
                tr->raw[j] = dot;
                tr->scaled[j] = scaled;
                tr->masked[j] = sc[jj];
            }
        }
        float tile_max = kNegInf;
        for (int jj = 0; jj < n; ++jj) tile_max = nan_max(tile_max, sc[jj]);
        const float m_new = nan_max(m, tile_max);
        // Nothing above -inf yet: shift by 0 so that exp(-inf - shift) = 0
        // instead of exp(-inf - -inf) = NaN.
        const float shift = softmax_shift<M>(m_new == kNegInf ? 0.0f : m_new);
        // First non-empty tile: (l, acc) are 0 and stay 0.
        const float alpha = m == kNegInf ? 0.0f : std::exp(softmax_shift<M>(m) - shift);
        l = l * alpha;
        if constexpr (M != Mutant::online_no_rescale)
            for (int c = 0; c < d; ++c) acc[c] = acc[c] * alpha;
        for (int jj = 0; jj < n; ++jj) pt[jj] = std::exp(sc[jj] - shift);
        for (int jj = 0; jj < n; ++jj)
            if (counts_in_normalizer<M>(j0 + jj, first_visible)) l = accumulate<M>(l, pt[jj]);
        for (int jj = 0; jj < n; ++jj) {
            // A hidden key has p exactly 0: skipping it keeps its V (NaN
            // padding, say) out of O. A finite sentinel's p is not 0.
            if (pt[jj] == 0.0f) continue;
            const float* v = kv.v + kv_row_offset<M>(kv.view, p.kv_start[seq], seq, j0 + jj, vh, p.n_kv_heads, d);
            for (int c = 0; c < d; ++c) acc[c] = accumulate<M>(acc[c], pt[jj] * v[c]);
        }
        m = m_new;
        if (tr) {
            tr->tile_max.push_back(m);
            tr->tile_sum.push_back(l);
        }
    }

    if (m == kNegInf) { // no key scored above -inf: the fully masked convention
        for (int c = 0; c < d; ++c) o[c] = 0.0f;
        *lse = kNegInf;
    } else {
        for (int c = 0; c < d; ++c) o[c] = round_to(p.dtype, acc[c] / l); // CUDA stores O in T
        *lse = softmax_shift<M>(m) + std::log(l);
    }
    if (tr) {
        tr->row_max = m;
        tr->row_sum = m == kNegInf ? 0.0f : l;
        for (int c = 0; c < d; ++c) tr->o[c] = o[c];
        reconstruct_probabilities(*tr, softmax_shift<M>(m)); // the kernel never forms exps nor P
    }
}

template <Mutant M>
Observation run_decode(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const AttnShape s = attn_shape_of(p);
    GuardedHostBuffer o(p.q.size(), "O"), lse(static_cast<size_t>(p.total_q()) * p.n_q_heads, "LSE");
    std::optional<ProbeTrace> trace;
    if (probe) trace = empty_probe_trace(p, *probe);
    const KvRowsHost kv(p); // contiguous, or a paged cache's pools
    for (int b = 0; b < p.batch(); ++b) {
        if (p.q_lens[b] == 0) continue;
        for (int h = 0; h < p.n_q_heads; ++h) {
            const bool probed = trace && probe->seq == b && probe->head == h && probe->token == 0;
            decode_row<M>(p, kv, s, b, h, o.data() + p.o_index(b, 0, h), lse.data() + p.lse_index(b, 0, h),
                          probed ? &*trace : nullptr);
        }
    }
    return guarded_observation(o, lse, std::move(trace));
}

} // namespace

std::string decode_unsupported(const Case& c, Backend b, Mutant m) {
    return decode_family_unsupported(Family::decode, "decode", c.q_lens, c.head_dim, c.dtype, b, m);
}

PrecisionProfile decode_profile(const Case& c, Backend) { return decode_family_profile(c, kTile); }

Observation decode_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (std::string why = decode_unsupported(shape_of(p), Backend::cpu, m); !why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode");
    return dispatch_mutant<&carries_cpu<Family::decode>>(
        m, "decode", [&](auto mc) { return run_decode<decltype(mc)::value>(p, probe); });
}

} // namespace attncheck::kernels
