// Pieces of attention logic shared by every kernel family and its CPU twin,
// compiled for host and device alike: the mask, the GQA head map, the
// softmax scale, the masked-score fill value, and fp16 accumulation for the
// mutant that needs it. Every mutation point lives here or in the family's
// own file, behind `if constexpr`, so production code has no extra branch.
//
// These are the engine's definitions, written separately from the oracle's
// (oracle/reference_attention.hpp): a shared mistake would hide itself.
#pragma once

#include <cmath>

#include "engine/case/dtype.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/mutant.hpp"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define AC_HD __host__ __device__ __forceinline__
#else
#define AC_HD inline
#endif

namespace attncheck::kernels {

// Shape of one launch, plain old data for host and device.
struct AttnShape {
    int batch, n_q_heads, n_kv_heads, head_dim;
    int causal, window;
    float scale;
};

// The launch shape of a problem (host only; kernels take it by value).
inline AttnShape attn_shape_of(const AttentionProblem& p) {
    return {p.batch(), p.n_q_heads, p.n_kv_heads, p.head_dim, p.causal ? 1 : 0, p.window, static_cast<float>(p.scale)};
}

// Absolute position of query i of a sequence: bottom-right alignment puts
// the last query at the last key (FlashAttention >= 2.1).
template <Mutant M>
AC_HD int query_position(int q_len, int kv_len, int i) {
    if constexpr (M == Mutant::top_left_causal)
        return i;
    else
        return kv_len - q_len + i;
}

// Key j visible to the query at absolute position pos?
template <Mutant M>
AC_HD bool key_visible(const AttnShape& s, int pos, int j) {
    if (!s.causal) return true;
    if constexpr (M == Mutant::mask_diagonal_dropped) {
        if (j >= pos) return false;
    } else {
        if (j > pos) return false;
    }
    if constexpr (M == Mutant::mask_past_key) {
        if (j == pos - 1) return false;
    }
    if (s.window > 0 && j <= pos - s.window) return false;
    return true;
}

// Keys a query may see lie in [lo, hi); loops run over this range (or the
// tiles that cover it) and apply key_visible inside.
template <Mutant M>
AC_HD void key_range(const AttnShape& s, int kv_len, int pos, int& lo, int& hi) {
    if (!s.causal) {
        lo = 0;
        hi = kv_len;
        return;
    }
    hi = pos + 1 < kv_len ? pos + 1 : kv_len;
    if (hi < 0) hi = 0;
    lo = s.window > 0 ? pos + 1 - s.window : 0;
    if (lo < 0) lo = 0;
    if (lo > hi) lo = hi;
}

// First key of [lo, hi) the query at pos sees, or -1: the key the
// normalizer_drops_key mutant leaves out of the row sum.
template <Mutant M>
AC_HD int first_visible_key(const AttnShape& s, int pos, int lo, int hi) {
    for (int j = lo; j < hi; ++j)
        if (key_visible<M>(s, pos, j)) return j;
    return -1;
}

// Tiles of `tile` keys, aligned to key 0, that cover the key range [lo, hi):
// [t_begin, t_end), none for an empty range.
AC_HD void covering_tiles(int lo, int hi, int tile, int& t_begin, int& t_end) {
    t_begin = lo / tile;
    t_end = hi > lo ? (hi + tile - 1) / tile : t_begin;
}

template <Mutant M>
AC_HD int kv_head_of(const AttnShape& s, int q_head) {
    if constexpr (M == Mutant::gqa_map_mod)
        return q_head % s.n_kv_heads;
    else
        return q_head / (s.n_q_heads / s.n_kv_heads);
}

// Head whose V rows are read (K always uses kv_head_of).
template <Mutant M>
AC_HD int v_head_of(const AttnShape& s, int kv_head) {
    if constexpr (M == Mutant::v_wrong_head)
        return (kv_head + 1) % s.n_kv_heads;
    else
        return kv_head;
}

template <Mutant M>
AC_HD float score_scale(float scale) {
    if constexpr (M == Mutant::scale_missing)
        return 1.0f;
    else if constexpr (M == Mutant::scale_twice)
        return scale * scale;
    else
        return scale;
}

// Value a masked score takes.
template <Mutant M>
AC_HD float masked_score() {
    if constexpr (M == Mutant::finite_mask_sentinel)
        return -1e4f;
    else
        return -INFINITY;
}

// Row max used by the softmax shift (the mutant forgets it).
template <Mutant M>
AC_HD float softmax_shift(float row_max) {
    if constexpr (M == Mutant::no_row_max)
        return 0.0f;
    else
        return row_max;
}

// q value as loaded into the dot product.
template <Mutant M>
AC_HD float q_loaded(float q, int c) {
    if constexpr (M == Mutant::partial_q_load)
        return c == 0 ? q : 0.0f;
    else
        return q;
}

// acc + x, in fp32; in fp16 for the fp16_accumulation mutant.
template <Mutant M>
AC_HD float accumulate(float acc, float x) {
    if constexpr (M == Mutant::fp16_accumulation) {
#if defined(__CUDA_ARCH__)
        return __half2float(__float2half_rn(acc + x));
#else
        return round_to(DType::f16, acc + x);
#endif
    } else {
        return acc + x;
    }
}

// Paged KV cache: the pool row holding key j of a sequence whose block table
// (physical page of each logical page) starts at `table`; the layout is
// engine/case/paged_kv.hpp's. The mutant computes the page index from the
// 1-based position, (j - 1) / page_size: a page's first key is read from
// slot 0 of the previous page.
template <Mutant M>
AC_HD long long paged_row(const int* table, int page_size, int j) {
    const int page = j / page_size, slot = j - page * page_size;
    if constexpr (M == Mutant::page_boundary_off_by_one) {
        if (j > 0) return static_cast<long long>(table[(j - 1) / page_size]) * page_size + slot;
    }
    return static_cast<long long>(table[page]) * page_size + slot;
}

// max that keeps a NaN from either side (fmaxf would drop it and hide a NaN
// score behind the other keys).
AC_HD float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

// Does key j (the first visible key of the row) count in the row sum?
template <Mutant M>
AC_HD bool counts_in_normalizer(int j, int first_visible) {
    if constexpr (M == Mutant::normalizer_drops_key)
        return j != first_visible;
    else
        return true;
}

// The keys of a decode row (one query, the last position of its cache): its
// absolute position, the key range [lo, hi) its loops walk, the first
// visible key (for counts_in_normalizer) and the score scale it applies.
struct DecodeRowKeys {
    int pos, lo, hi, first_visible;
    float scale;
};
template <Mutant M>
AC_HD DecodeRowKeys decode_row_keys(const AttnShape& s, int kv_len) {
    DecodeRowKeys k{};
    k.pos = query_position<M>(1, kv_len, 0);
    key_range<M>(s, kv_len, k.pos, k.lo, k.hi);
    k.first_visible = first_visible_key<M>(s, k.pos, k.lo, k.hi);
    k.scale = score_scale<M>(s.scale);
    return k;
}

} // namespace attncheck::kernels
