// One key tile of flash_prefill's online softmax, shared by the kernel's two
// compute paths (flash_prefill_kernel.cuh): they hold a row's scores in
// different register layouts (mma fragments, or the fp32 thread grid), and
// this step is written once over both, parameterized by the layout (rows per
// thread, keys per thread, lanes per row, key of a register). Scores are in
// log2 units; the mutation points are attention_common.hpp's.
#pragma once

#include "kernels/common/attention_common.hpp"

namespace attncheck::kernels::flash {

// One tile of the online softmax for the R rows a thread holds; s holds the
// raw scores of KPT keys per row (key j_base + key_of(kk)); RED lanes
// (consecutive, xor-reducible) share each row. On return s holds the
// unnormalized probabilities exp2(s2 - shift) in fp32, m/l are updated and
// resc is the factor the caller applies to its O accumulator rows.
template <Mutant M, int R, int KPT, int RED, class KeyOf>
__device__ __forceinline__ void softmax_tile(float (&s)[R][KPT], float (&m)[R], float (&l)[R], float (&resc)[R],
                                             const AttnShape& sh, const int (&pos)[R], const int (&first_vis)[R],
                                             int kv_len, int j_base, bool interior, float scale_log2, float masked_log2,
                                             KeyOf key_of) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) {
            const int j = j_base + key_of(kk);
            const bool vis = interior || (j < kv_len && key_visible<M>(sh, pos[r], j));
            // __fmul_rn: a product the compiler may not fuse into the later
            // `s - shift` (an FMA there skips this rounding, so the row's own
            // max key gave exp2(+tiny) = 1 + ulp > 1 in the probe).
            s[r][kk] = vis ? __fmul_rn(s[r][kk], scale_log2) : masked_log2;
        }
        float mx = s[r][0];
#pragma unroll
        for (int kk = 1; kk < KPT; ++kk) mx = fmaxf(mx, s[r][kk]);
#pragma unroll
        for (int off = 1; off < RED; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float m_new = fmaxf(m[r], mx);
        float shift;
        if (m_new == -INFINITY) { // nothing visible yet: acc and l are 0
            shift = 0.0f;
            resc[r] = 1.0f;
        } else {
            shift = softmax_shift<M>(m_new);
            resc[r] = exp2f(softmax_shift<M>(m[r]) - shift); // exp2(-inf) = 0 on the first visible tile
        }
        m[r] = m_new;
        l[r] *= resc[r];
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) {
            const float e = exp2f(s[r][kk] - shift);
            s[r][kk] = e;
            if (counts_in_normalizer<M>(j_base + key_of(kk), first_vis[r])) l[r] = accumulate<M>(l[r], e);
        }
    }
}

} // namespace attncheck::kernels::flash
