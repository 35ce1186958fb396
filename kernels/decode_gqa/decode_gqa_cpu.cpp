// CPU twin of kernels/decode_gqa/decode_gqa.cu: GQA decode, one query token per
// sequence, organized as the CUDA kernel is. For each (sequence, kv head) a
// K tile and a V tile of kTile keys are loaded once and used by every q head
// of the kv head's group; each q head keeps its own online-softmax state
// (m, l, acc).
//
// Per q head and tile, the arithmetic follows the CUDA warp step by step:
// key jj of the tile is "lane" jj and computes its whole dot product in
// channel order; the tile max and the tile's row-sum contribution are xor
// butterflies over the 32 lanes (simulated here in the same order, so fp32
// and fp16-accumulation results match the device's pairing); P.V runs over
// the tile's keys in order for each channel.
//
// Tiles are aligned to key 0 and cover the row's key range [lo, hi); hidden
// keys inside them take masked_score<M>(). A row whose running max is still
// -inf at the end gives O = 0 and LSE = -inf.
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
#include "kernels/common/probe_trace.hpp"
#include "kernels/decode_gqa/decode_gqa.hpp"
#include "kernels/common/gqa_groups.hpp"

namespace attncheck::kernels {

namespace {

// Keys per tile = lanes per warp in kernels/decode_gqa/decode_gqa.cu (lane jj owns key
// jj of the tile); the declared profile's kv_tile.
constexpr int kTile = 32;
// Largest head_dim: the CUDA kernel gives each lane head_dim / 32 <= 8
// accumulator channels.
constexpr int kMaxHeadDim = kDecodeMaxHeadDim;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The device's __shfl_xor_sync butterflies: after the steps 16, 8, 4, 2, 1
// every lane holds the same result; lane 0's is returned.
inline float butterfly_max(float (&x)[kTile]) {
    for (int off = kTile / 2; off > 0; off /= 2) {
        float y[kTile];
        for (int i = 0; i < kTile; ++i) y[i] = nan_max(x[i], x[i ^ off]);
        std::copy(y, y + kTile, x);
    }
    return x[0];
}
template <Mutant M>
float butterfly_sum(float (&x)[kTile]) {
    for (int off = kTile / 2; off > 0; off /= 2) {
        float y[kTile];
        for (int i = 0; i < kTile; ++i) y[i] = accumulate<M>(x[i], x[i ^ off]);
        std::copy(y, y + kTile, x);
    }
    return x[0];
}

// Online-softmax state of one q head.
struct HeadState {
    int head = 0;
    std::vector<float> q, acc;
    float m = kNegInf, l = 0.0f;
    ProbeTrace* tr = nullptr;
};

template <Mutant M>
void decode_gqa_sequence(const AttentionProblem& p, const AttnShape& s, const std::vector<int>& table, int seq,
                         float* o, float* lse, const std::optional<ProbeRequest>& probe,
                         std::optional<ProbeTrace>& trace) {
    const int d = p.head_dim, kv_len = p.kv_lens[seq], g = p.group();
    const auto [pos, lo, hi, first_visible, scale] = decode_row_keys<M>(s, kv_len);
    int t_begin, t_end;
    covering_tiles(lo, hi, kTile, t_begin, t_end);

    std::vector<float> k_tile(static_cast<size_t>(kTile) * d), v_tile(static_cast<size_t>(kTile) * d);
    std::vector<HeadState> st(static_cast<size_t>(g));
    for (int kvh = 0; kvh < p.n_kv_heads; ++kvh) {
        const int vh = v_head_of<M>(s, kvh);
        for (int i = 0; i < g; ++i) {
            HeadState& h = st[i];
            h.head = table[static_cast<size_t>(kvh) * g + i];
            h.q.resize(d);
            h.acc.assign(d, 0.0f);
            h.m = kNegInf;
            h.l = 0.0f;
            const float* qrow = &p.q[p.q_index(seq, 0, h.head)];
            for (int c = 0; c < d; ++c) h.q[c] = q_loaded<M>(qrow[c], c);
            h.tr = trace && probe->seq == seq && probe->head == h.head && probe->token == 0 ? &*trace : nullptr;
        }
        for (int t = t_begin; t < t_end; ++t) {
            const int j0 = t * kTile, n = std::min(kTile, kv_len - j0);
            // The tile, loaded once for the whole group.
            for (int jj = 0; jj < n; ++jj) {
                const float* k = &p.k[p.kv_index(seq, j0 + jj, kvh)];
                const float* v = &p.v[p.kv_index(seq, j0 + jj, vh)];
                std::copy(k, k + d, &k_tile[static_cast<size_t>(jj) * d]);
                std::copy(v, v + d, &v_tile[static_cast<size_t>(jj) * d]);
            }
            for (HeadState& h : st) {
                float sc[kTile], pt[kTile], cnt[kTile], red[kTile];
                for (int jj = 0; jj < kTile; ++jj) {
                    if (jj >= n) { // past the cache: not a key at all
                        sc[jj] = kNegInf;
                        continue;
                    }
                    const int j = j0 + jj;
                    const float* k = &k_tile[static_cast<size_t>(jj) * d];
                    float dot = 0.0f;
                    for (int c = 0; c < d; ++c) dot += h.q[c] * k[c];
                    const float scaled = dot * scale;
                    sc[jj] = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                    if (h.tr) {
                        h.tr->raw[j] = dot;
                        h.tr->scaled[j] = scaled;
                        h.tr->masked[j] = sc[jj];
                    }
                }
                std::copy(sc, sc + kTile, red);
                const float tile_max = butterfly_max(red);
                const float m_new = nan_max(h.m, tile_max);
                // Nothing above -inf yet: shift by 0 (exp(-inf - 0) = 0, not NaN).
                const float shift = softmax_shift<M>(m_new == kNegInf ? 0.0f : m_new);
                const float alpha = h.m == kNegInf ? 0.0f : std::exp(softmax_shift<M>(h.m) - shift);
                for (int jj = 0; jj < kTile; ++jj) {
                    pt[jj] = std::exp(sc[jj] - shift);
                    cnt[jj] = counts_in_normalizer<M>(j0 + jj, first_visible) ? pt[jj] : 0.0f;
                }
                const float tile_sum = butterfly_sum<M>(cnt);
                h.l = accumulate<M>(h.l * alpha, tile_sum);
                if constexpr (M != Mutant::online_no_rescale)
                    for (int c = 0; c < d; ++c) h.acc[c] = h.acc[c] * alpha;
                for (int jj = 0; jj < n; ++jj) {
                    if (pt[jj] == 0.0f) continue; // hidden key: its V (maybe NaN padding) stays out
                    const float* v = &v_tile[static_cast<size_t>(jj) * d];
                    for (int c = 0; c < d; ++c) h.acc[c] = accumulate<M>(h.acc[c], pt[jj] * v[c]);
                }
                h.m = m_new;
                if (h.tr) {
                    h.tr->tile_max.push_back(h.m);
                    h.tr->tile_sum.push_back(h.l);
                }
            }
        }
        for (HeadState& h : st) {
            float* orow = o + p.o_index(seq, 0, h.head);
            float* lrow = lse + p.lse_index(seq, 0, h.head);
            if (h.m == kNegInf) { // no key scored above -inf: the fully masked convention
                for (int c = 0; c < d; ++c) orow[c] = 0.0f;
                *lrow = kNegInf;
            } else {
                for (int c = 0; c < d; ++c) orow[c] = round_to(p.dtype, h.acc[c] / h.l); // CUDA stores O in T
                *lrow = softmax_shift<M>(h.m) + std::log(h.l);
            }
            if (h.tr) {
                h.tr->row_max = h.m;
                h.tr->row_sum = h.m == kNegInf ? 0.0f : h.l;
                for (int c = 0; c < d; ++c) h.tr->o[c] = orow[c];
                reconstruct_probabilities(*h.tr, softmax_shift<M>(h.m)); // the kernel never forms exps nor P
            }
        }
    }
}

template <Mutant M>
Observation run_decode_gqa(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const AttnShape s = attn_shape_of(p);
    const std::vector<int> table = group_table<M>(s);
    GuardedHostBuffer o(p.q.size(), "O"), lse(static_cast<size_t>(p.total_q()) * p.n_q_heads, "LSE");
    std::optional<ProbeTrace> trace;
    if (probe) trace = empty_probe_trace(p, *probe);
    for (int b = 0; b < p.batch(); ++b)
        if (p.q_lens[b] == 1) decode_gqa_sequence<M>(p, s, table, b, o.data(), lse.data(), probe, trace);
    return guarded_observation(o, lse, std::move(trace));
}

} // namespace

std::string decode_gqa_unsupported(const Case& c, Backend b, Mutant m) {
    return decode_family_unsupported(Family::decode_gqa, "decode_gqa", c.q_lens, c.head_dim, c.dtype, b, m);
}

PrecisionProfile decode_gqa_profile(const Case& c, Backend) { return decode_family_profile(c, kTile); }

Observation decode_gqa_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (std::string why = decode_gqa_unsupported(shape_of(p), Backend::cpu, m); !why.empty())
        throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode_gqa");
    return dispatch_mutant<&carries_cpu<Family::decode_gqa>>(
        m, "decode_gqa", [&](auto mc) { return run_decode_gqa<decltype(mc)::value>(p, probe); });
}

} // namespace attncheck::kernels
