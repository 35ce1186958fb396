// Pieces of the decode_split family shared by the CUDA kernels
// (kernels/decode_split/decode_split.cu) and the CPU twin (kernels/decode_split/decode_split_cpu.cpp),
// compiled for host and device alike, so that both backends partition the
// keys, tile them, run the online softmax step and weight the merge with the
// very same code:
//
//   - the chunking of a sequence's keys into num_splits contiguous splits and
//     the key range each split processes (split_keys);
//   - one online-softmax step's rescale factor and probabilities
//     (online_alpha, online_exp);
//   - the LSE merge weight of a split (merge_weight), the merge of a row
//     (merge_sum_add, merge_num_add, merge_result) and its probe's
//     reconstructed stages;
//   - the support check (unsupported_reason) and the scratch layout sizes.
//
// The mutation points stay in attention_common.hpp (mask, scale, fill,
// shift, accumulation...) plus the two that only exist in this family
// (online_no_rescale, split_merge_no_lse), which the kernels test with
// `if constexpr` where they apply.
#pragma once

#include <cmath>
#include <string>

#include "engine/case/dtype.hpp"
#include "engine/targets/mutant.hpp"
#include "engine/targets/target.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/paged_kv_rows.hpp"
#include "kernels/families.hpp"

namespace attncheck::kernels::decode_split_detail {

// Keys per online-softmax tile. Each split walks its keys in tiles of this
// length: scores of a tile are formed, the running max is updated once per
// tile (one rescale of the accumulator per tile), then the tile's
// probabilities are accumulated. 32 keys = one warp's worth of scores, small
// enough that modest test cases already span several tiles per split (so the
// online rescale is exercised), large enough to amortize a block barrier.
// The precision profile declares it as kv_tile.
inline constexpr int kTile = 32;

// Largest head_dim supported: the CUDA kernel keeps the query row in shared
// memory and each thread owns head_dim / kThreads accumulator channels in
// registers, sized for this bound.
inline constexpr int kMaxHeadDim = 256;

// Scratch bound (floats) for the split partials, rows * splits * (head_dim + 2):
// 1 GiB. A case asking for more (huge num_splits on many rows) is rejected
// rather than attempted.
inline constexpr long long kMaxScratchFloats = 1LL << 28;

// Scratch layout, both backends (row = packed (token, q head) index, i.e. the
// LSE index, split = 0 .. num_splits-1):
//   ml [rows][num_splits][2]         m_i (running max), l_i (running sum)
//   acc[rows][num_splits][head_dim]  unnormalized sum_j exp(s_j - m_i) v_j
AC_HD long long ml_index(long long row, int num_splits, int split) { return (row * num_splits + split) * 2; }
AC_HD long long acc_index(long long row, int num_splits, int split, int head_dim) {
    return (row * num_splits + split) * static_cast<long long>(head_dim);
}

// Per-sequence arrays of a launch, on the device (both phase-1 paths and the merge).
struct SeqArrays {
    const int* q_start;
    const int* kv_start;
    const int* q_lens;
    const int* kv_lens;
};

// Fewest keys the split heuristic gives a split: four tiles, so that a
// split's fixed costs (its query rows, the pipeline's fill, the write and
// merge of its partial) stay small beside its keys.
inline constexpr int kMinSplitKeys = 4 * kTile;

// A split's fixed cost in keys' worth of time (its query rows, the pipeline's
// fill and drain, the write and merge of its partial): two tiles, measured
// on the H200 as the time of a split of a few tiles beside a long one.
inline constexpr int kSplitOverheadKeys = 2 * kTile;

// The split count for a launch of `blocks_per_split` phase-1 blocks per split
// on a GPU that holds `slots` of them at once (SMs x resident blocks per SM).
// A block's time is about its keys plus the fixed cost; blocks run in waves
// of `slots`, and a last, partly filled wave costs as much as a full one
// (its few blocks cannot draw the bandwidth the full waves did). So the count
// minimizes waves(s) x (keys per split + kSplitOverheadKeys), taking the
// fewest splits among equals, with no split under kMinSplitKeys keys of the
// longest sequence. Production callers use it (decode_split_cuda_splits);
// test cases choose their own counts to reach empty and uneven splits.
inline int heuristic_splits(long long blocks_per_split, int max_kv_len, long long slots) {
    if (blocks_per_split <= 0 || slots <= 0 || max_kv_len <= 0) return 1;
    const long long most = max_kv_len / kMinSplitKeys < 1 ? 1 : max_kv_len / kMinSplitKeys;
    int best = 1;
    double best_cost = -1;
    for (long long s = 1; s <= most && s <= 4096; ++s) {
        const double waves = static_cast<double>((blocks_per_split * s + slots - 1) / slots);
        const double cost = waves * static_cast<double>((max_kv_len + s - 1) / s + kSplitOverheadKeys);
        if (best_cost < 0 || cost < best_cost) {
            best = static_cast<int>(s);
            best_cost = cost;
        }
    }
    return best;
}

// Empty when the combination is computed correctly; otherwise the reason.
// rows = sum(q_lens) * n_q_heads.
inline std::string unsupported_reason(int head_dim, DType dtype, long long rows, int num_splits, Backend b, Mutant m) {
    if (head_dim > kMaxHeadDim)
        return "decode_split: head_dim " + std::to_string(head_dim) + " > " + std::to_string(kMaxHeadDim) +
               " (query row and accumulators are sized for head_dim <= 256)";
    if (head_dim < 1) return "decode_split: head_dim must be >= 1";
    if (num_splits < 1) return "decode_split: num_splits must be >= 1";
    if (static_cast<double>(rows) * num_splits * (head_dim + 2) > static_cast<double>(kMaxScratchFloats))
        return "decode_split: split partials would need " + std::to_string(rows) + " rows x " +
               std::to_string(num_splits) + " splits x (head_dim + 2) floats, over the 2^28-float scratch limit";
    if (std::string why = mutant_unsupported("decode_split", features_of(Family::decode_split), m, b); !why.empty())
        return why;
    if (b == Backend::cuda && m != Mutant::none && dtype != DType::f16)
        return "decode_split: mutant builds are fp16 only";
    return {};
}

AC_HD float ds_exp(float x) {
#if defined(__CUDA_ARCH__)
    return expf(x); // full-accuracy expf (<= 2 ulp), not __expf: the profile declares exp_ulps = 2
#else
    return std::exp(x);
#endif
}

AC_HD float ds_log(float x) {
#if defined(__CUDA_ARCH__)
    return logf(x);
#else
    return std::log(x);
#endif
}

// max that ignores a NaN operand, identically on host and device.
AC_HD float ds_max(float a, float b) {
#if defined(__CUDA_ARCH__)
    return fmaxf(a, b);
#else
    return std::fmax(a, b);
#endif
}

// Keys [a, b) that split `split` processes for the query at position pos,
// tiled from a in steps of kTile. The sequence's keys [0, kv_len) are cut
// into num_splits contiguous chunks of ceil(kv_len / num_splits) keys (the
// last chunks may be short or empty). Production kernels bound the loop by
// the row's visible range [lo, hi) (key_range), so a split sees only tiles
// that hold visible keys and may own none at all (a = b: the empty split,
// m = -inf, l = 0). The finite_mask_sentinel mutant models a kernel that
// walks its whole chunk and relies on the masked fill instead: masked keys
// then get -1e4 and a fully masked split or row is not empty.
template <Mutant M>
AC_HD void split_keys(const AttnShape& s, int kv_len, int num_splits, int split, int pos, int& a, int& b) {
    const long long chunk = (static_cast<long long>(kv_len) + num_splits - 1) / num_splits;
    long long cs = chunk * split, ce = cs + chunk;
    if (cs > kv_len) cs = kv_len;
    if (ce > kv_len) ce = kv_len;
    if constexpr (M == Mutant::finite_mask_sentinel) {
        a = static_cast<int>(cs);
        b = static_cast<int>(ce);
    } else {
        int lo, hi;
        key_range<M>(s, kv_len, pos, lo, hi);
        a = lo > cs ? lo : static_cast<int>(cs);
        b = hi < ce ? hi : static_cast<int>(ce);
        if (b < a) b = a;
    }
}

// Factor applied to the running (l, acc) when the running max moves from m
// to m_new. Nothing accumulated yet (m = -inf): 1, so that an all-masked
// tile never forms exp(-inf - -inf) = NaN.
template <Mutant M>
AC_HD float online_alpha(float m, float m_new) {
    if (m == -INFINITY) return 1.0f;
    return ds_exp(softmax_shift<M>(m) - softmax_shift<M>(m_new));
}

// exp(s - m_new) for a (possibly masked) score: a -inf score contributes
// exactly 0, even when m_new is -inf too.
template <Mutant M>
AC_HD float online_exp(float s, float m_new) {
    if (s == -INFINITY) return 0.0f;
    return ds_exp(s - softmax_shift<M>(m_new));
}

// LSE weight of a split with max m_i in the merge over max m: an empty split
// (m_i = -inf, l_i = 0, acc_i = 0) gets weight 0 -- the identity of the
// merge -- never exp(-inf - -inf).
template <Mutant M>
AC_HD float merge_weight(float m_i, float m) {
    if (m_i == -INFINITY) return 0.0f;
    return ds_exp(softmax_shift<M>(m_i) - softmax_shift<M>(m));
}

// Phase 2 for one row, both backends. The merged max m = max_i m_i (the
// CPU twin in split order, the CUDA merge as a tree: max does not depend on
// the order), the weights w_i = merge_weight(m_i, m), then, in split order,
// the row sum L = sum_i w_i l_i (merge_sum_add, one split's step) and each
// channel's numerator sum_i w_i acc_i[c] (merge_num_add), merge_result the
// channel's value in fp32 (the caller rounds it to T).
template <Mutant M>
AC_HD float merge_sum_add(float L, float w, float l_i) {
    return accumulate<M>(L, w * l_i);
}

template <Mutant M>
AC_HD float merge_num_add(float num, float w, float l_i, float acc_ic) {
    // The bug: average the normalized partials, no LSE weights (an empty
    // split contributes 0/0 = NaN).
    if constexpr (M == Mutant::split_merge_no_lse) return accumulate<M>(num, acc_ic / l_i);
    return accumulate<M>(num, w * acc_ic);
}

template <Mutant M>
AC_HD float merge_result(float num, float L, float m, int num_splits) {
    if constexpr (M == Mutant::split_merge_no_lse) return num / static_cast<float>(num_splits);
    if (m == -INFINITY) return 0.0f; // every split empty: no visible key
    return num / L;
}

// This variant never forms normalized probabilities: the probed row's exps
// and p are reconstructed from the n masked scores phase 1 recorded and the
// merged (m, L), by the CUDA merge kernel and the CPU twin alike. Returns
// the largest exp.
template <Mutant M>
AC_HD float reconstruct_merged_probabilities(const float* masked, int n, float m, float L, float* exps, float* p) {
    float max_exp = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float e = m == -INFINITY ? 0.0f : online_exp<M>(masked[j], m);
        exps[j] = e;
        p[j] = e == 0.0f ? 0.0f : e / L;
        max_exp = ds_max(max_exp, e);
    }
    return max_exp;
}

} // namespace attncheck::kernels::decode_split_detail

namespace attncheck {
struct AttentionProblem;
}

namespace attncheck::kernels {

// CUDA builds only: the split count heuristic_splits gives a problem's shape
// on the current device (its SM count and the occupancy of the phase-1
// kernel the problem would run). num_splits of the problem is ignored.
int decode_split_cuda_splits(const AttentionProblem& p);

} // namespace attncheck::kernels
