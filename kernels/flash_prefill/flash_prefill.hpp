// Tiling of the flash_prefill family, shared by the CUDA kernel
// (kernels/flash_prefill/flash_prefill.cu) and its CPU twin (kernels/flash_prefill/flash_prefill_cpu.cpp)
// so that the two can never disagree on tile sizes, on which key tiles a
// block visits, or on which builds exist.
#pragma once

#include "engine/case/dtype.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/families.hpp"

namespace attncheck::kernels::flash {

// Query rows per block: 4 warps x 16 rows, one m16 row tile of the
// m16n8k16 mma per warp (the fp32 path keeps the same 64 rows per block).
inline constexpr int kBlockM = 64;
inline constexpr int kWarps = 4;
inline constexpr int kThreads = kWarps * 32;

// Keys per tile (BLOCK_N), the online-softmax step. 64 keys for head dims up
// to 128; 32 for head_dim 256, where Q + K + V tiles of 64 keys would need
// 99 KB (fp16) / 200 KB (fp32) of shared memory and the per-warp score tile
// would compete with the 128 accumulator registers of a 256-wide O row pair.
constexpr int block_n(int head_dim) { return head_dim > 128 ? 32 : 64; }

// Head dims with a compiled kernel. All are multiples of 16 (the mma k-step),
// so no zero padding of the head dimension is needed.
constexpr bool head_dim_supported(int d) { return d == 64 || d == 80 || d == 96 || d == 128 || d == 256; }

// CUDA mutant builds exist only for fp16 at head_dim 64 (docs/kernel-families.md).
inline bool cuda_mutant_built(DType t, int d) { return t == DType::f16 && d == 64; }

// Scores are kept in log2 units: s2 = (q.k) * (scale * log2 e), so that the
// exponential is exp2 (one ex2 on the GPU); LSE = shift * ln 2 + log(l).
inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// Key tiles [t_lo, t_hi) visited by the block of query rows [row0, row1)
// (row1 > row0; tokens within the sequence): the union of the rows' visible
// ranges, in tiles of bn keys aligned to key 0. key_range's bounds are
// monotone in the query position, so the first and last rows suffice. Keys
// inside these tiles that a row does not see are masked with key_visible.
template <Mutant M>
AC_HD void block_tile_range(const AttnShape& s, int q_len, int kv_len, int row0, int row1, int bn, int& t_lo,
                            int& t_hi) {
    int lo_a, hi_a, lo_b, hi_b;
    key_range<M>(s, kv_len, query_position<M>(q_len, kv_len, row0), lo_a, hi_a);
    key_range<M>(s, kv_len, query_position<M>(q_len, kv_len, row1 - 1), lo_b, hi_b);
    const int lo = lo_a < lo_b ? lo_a : lo_b;
    const int hi = hi_a > hi_b ? hi_a : hi_b;
    if (lo >= hi) {
        t_lo = t_hi = 0;
        return;
    }
    t_lo = lo / bn;
    t_hi = (hi + bn - 1) / bn;
}

} // namespace attncheck::kernels::flash
