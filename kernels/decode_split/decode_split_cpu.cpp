// CPU twin of kernels/decode_split/decode_split.cu: split-KV decode (flash-decoding) with
// an LSE merge, in the same two phases, with the same chunking, tiles, online
// softmax step and merge weights (kernels/decode_split/decode_split.hpp holds the
// code both backends share), fp32 throughout except where the CUDA grouped
// kernel rounds: P rounded to the input dtype (fp16/bf16) before P.V, as
// the mma's A operand takes it, and O rounded to the input dtype at the very
// end as the CUDA merge kernel stores it.
//
// Phase 1, per (query row, split): walk the split's keys in tiles of kTile,
// form the tile's masked scores, move the running max m once per tile,
// rescale (l, acc) by exp(m_old - m_new), add the tile's exps to l and their
// V-weighted sum to acc; write (m_i, l_i, acc_i) to the scratch partials.
// Phase 2, per row: m = max_i m_i, w_i = exp(m_i - m) (0 for an empty split),
// O = sum_i w_i acc_i / sum_i w_i l_i, LSE = m + log(sum_i w_i l_i).
//
// Differences from the CUDA version that do not change the declared
// rounding: the q.k dot product is summed left to right here, by a warp
// shuffle tree in the portable kernel and inside the tensor core in the
// grouped one (fp32, within gamma_{d+2}); a tile's exps join the row sum in
// key order here and in the portable kernel, as a shuffle tree in the
// grouped one (fp32, at most kTile terms), and the grouped kernel adds a
// tile's P V to the accumulator as one sum; the portable kernel keeps P in
// fp32 (it rounds less than the profile declares); nvcc may contract
// a*b + c into an FMA (more accurate, never less).
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/targets/guarded_buffer.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/host_observation.hpp"
#include "kernels/common/probe_trace.hpp"
#include "kernels/decode_split/decode_split.hpp"

namespace attncheck::kernels {

namespace {

using namespace decode_split_detail;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

long long rows_of(const std::vector<int>& q_lens, int n_q_heads) {
    long long t = 0;
    for (int q : q_lens) t += q;
    return t * n_q_heads;
}

template <Mutant M>
Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const AttnShape shape = attn_shape_of(p);
    const int H = p.n_q_heads, d = p.head_dim, S = p.num_splits;
    const long long rows = p.total_q() * H;
    const float scale = score_scale<M>(shape.scale);

    GuardedHostBuffer o_buf(p.q.size(), "decode_split.O"), lse_buf(static_cast<std::size_t>(rows), "decode_split.LSE");
    GuardedHostBuffer ml_buf(static_cast<std::size_t>(rows * S * 2), "decode_split.partial_ml");
    GuardedHostBuffer acc_buf(static_cast<std::size_t>(rows * S * d), "decode_split.partial_acc");
    float* const O = o_buf.data();
    float* const LSE = lse_buf.data();
    float* const ML = ml_buf.data();
    float* const ACC = acc_buf.data();

    std::optional<ProbeTrace> trace;
    if (probe) {
        // Keys this variant never scores (outside every processed tile) keep
        // NaN raw/scaled and -inf masked, as on the device.
        ProbeTrace t = empty_probe_trace(p, *probe);
        t.o.assign(d, kNaN);
        t.split_max.assign(S, kNaN);
        t.split_sum.assign(S, kNaN);
        trace = std::move(t);
    }

    // K and V rows: the contiguous tensors, or a paged cache's pools through its block table.
    const KvRowsHost kv(p);
    auto kv_at = [&](const float* base, int b, int j, int head) {
        return base + kv_row_offset<M>(kv.view, p.kv_start[b], b, j, head, p.n_kv_heads, d);
    };

    // ---- phase 1: partial online softmax per (row, split)
    std::vector<float> q(d), sc(kTile), pt(kTile), pv(kTile), acc(d);
    const bool probs_stored = p.dtype != DType::f32; // P rounded to T before P.V (the grouped kernel's mma)
    for (int b = 0; b < p.batch(); ++b) {
        const int q_len = p.q_lens[b], kv_len = p.kv_lens[b];
        for (int i = 0; i < q_len; ++i)
            for (int h = 0; h < H; ++h) {
                const long long row = p.lse_index(b, i, h);
                const int kvh = kv_head_of<M>(shape, h);
                const int vh = v_head_of<M>(shape, kvh);
                const int pos = query_position<M>(q_len, kv_len, i);
                int lo, hi; // the row's visible range; lo is its first visible key (normalizer mutant)
                key_range<M>(shape, kv_len, pos, lo, hi);
                const float* qr = &p.q[p.q_index(b, i, h)];
                for (int c = 0; c < d; ++c) q[c] = q_loaded<M>(qr[c], c);
                ProbeTrace* tr = trace && trace->where.seq == b && trace->where.head == h && trace->where.token == i
                                     ? &*trace
                                     : nullptr;
                for (int split = 0; split < S; ++split) {
                    int ka, kb;
                    split_keys<M>(shape, kv_len, S, split, pos, ka, kb);
                    float m = -INFINITY, l = 0.0f;
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int j0 = ka; j0 < kb; j0 += kTile) {
                        const int nt = std::min(kTile, kb - j0);
                        float tile_max = -INFINITY;
                        for (int jj = 0; jj < nt; ++jj) {
                            const int j = j0 + jj;
                            const float* k = kv_at(kv.k, b, j, kvh);
                            float raw = 0.0f;
                            for (int c = 0; c < d; ++c) raw += q[c] * k[c];
                            const float scaled = raw * scale;
                            const float masked = key_visible<M>(shape, pos, j) ? scaled : masked_score<M>();
                            sc[jj] = masked;
                            tile_max = ds_max(tile_max, masked);
                            if (tr) {
                                tr->raw[j] = raw;
                                tr->scaled[j] = scaled;
                                tr->masked[j] = masked;
                            }
                        }
                        const float m_new = ds_max(m, tile_max);
                        const float alpha = online_alpha<M>(m, m_new);
                        for (int jj = 0; jj < nt; ++jj) {
                            pt[jj] = online_exp<M>(sc[jj], m_new);
                            pv[jj] = probs_stored ? round_to(p.dtype, pt[jj]) : pt[jj];
                        }
                        l = l * alpha;
                        for (int jj = 0; jj < nt; ++jj)
                            if (counts_in_normalizer<M>(j0 + jj, lo)) l = accumulate<M>(l, pt[jj]);
                        for (int c = 0; c < d; ++c) {
                            float a = acc[c];
                            if constexpr (M != Mutant::online_no_rescale) a = a * alpha;
                            for (int jj = 0; jj < nt; ++jj)
                                a = accumulate<M>(a, pv[jj] * kv_at(kv.v, b, j0 + jj, vh)[c]);
                            acc[c] = a;
                        }
                        m = m_new;
                    }
                    ML[ml_index(row, S, split)] = m;
                    ML[ml_index(row, S, split) + 1] = l;
                    std::copy(acc.begin(), acc.end(), ACC + acc_index(row, S, split, d));
                    if (tr) {
                        tr->split_max[split] = m;
                        tr->split_sum[split] = l;
                    }
                }
            }
    }

    // ---- phase 2: LSE merge per row
    std::vector<float> w(static_cast<size_t>(S)); // the row's split weights
    for (int b = 0; b < p.batch(); ++b)
        for (int i = 0; i < p.q_lens[b]; ++i)
            for (int h = 0; h < H; ++h) {
                const long long row = p.lse_index(b, i, h);
                float* o = O + p.o_index(b, i, h);
                float m = -INFINITY;
                for (int split = 0; split < S; ++split) m = ds_max(m, ML[ml_index(row, S, split)]);
                float L = 0.0f;
                for (int split = 0; split < S; ++split) {
                    w[split] = merge_weight<M>(ML[ml_index(row, S, split)], m);
                    L = merge_sum_add<M>(L, w[split], ML[ml_index(row, S, split) + 1]);
                }
                for (int c = 0; c < d; ++c) {
                    float num = 0.0f;
                    for (int split = 0; split < S; ++split)
                        num = merge_num_add<M>(num, w[split], ML[ml_index(row, S, split) + 1],
                                               ACC[acc_index(row, S, split, d) + c]);
                    o[c] = round_to(p.dtype, merge_result<M>(num, L, m, S)); // CUDA stores O in T
                }
                LSE[row] = m == -INFINITY ? -INFINITY : softmax_shift<M>(m) + ds_log(L);
                if (trace && trace->where.seq == b && trace->where.head == h && trace->where.token == i) {
                    ProbeTrace& t = *trace;
                    t.row_max = m;
                    t.row_sum = L;
                    t.max_exp = reconstruct_merged_probabilities<M>(t.masked.data(), static_cast<int>(t.masked.size()),
                                                                    m, L, t.exps.data(), t.p.data());
                    t.o.assign(o, o + d);
                }
            }

    Observation obs = guarded_observation(o_buf, lse_buf, std::move(trace));
    ml_buf.check_guards();
    acc_buf.check_guards();
    return obs;
}

} // namespace

std::string decode_split_unsupported(const Case& c, Backend b, Mutant m) {
    return unsupported_reason(c.head_dim, c.dtype, rows_of(c.q_lens, c.n_q_heads), c.num_splits, b, m);
}

// fp16/bf16: P rounded to T before P.V (the grouped kernel's mma A operand;
// the twin does the same) and, on CUDA, tensor-core accumulation of Q.K^T
// and P.V, which may truncate: u_acc 2^-23. fp32 and the CPU: fp32
// accumulation everywhere (scores, sums, acc, merge).
PrecisionProfile decode_split_profile(const Case& c, Backend b) {
    PrecisionProfile prof;
    const bool low = c.dtype != DType::f32;
    prof.input = c.dtype;
    prof.probs_stored = low;
    prof.store = c.dtype;
    prof.u_acc = (b == Backend::cuda && low) ? 0x1p-23 : 0x1p-24;
    prof.output = c.dtype; // O stored in T by the merge
    // std::exp on the CPU, full-accuracy expf (not __expf) on CUDA: both <= 2 ulp.
    prof.exp_ulps = 2.0;
    prof.kv_tile = kTile;
    prof.uses_splits = true;
    return prof;
}

Observation decode_split_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    const std::string why =
        unsupported_reason(p.head_dim, p.dtype, p.total_q() * p.n_q_heads, p.num_splits, Backend::cpu, m);
    if (!why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode_split");
    return dispatch_mutant<&carries_cpu<Family::decode_split>>(
        m, "decode_split", [&](auto mc) { return run<decltype(mc)::value>(p, probe); });
}

} // namespace attncheck::kernels
