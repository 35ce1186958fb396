// The fp32 compute path of the flash_prefill kernel (T = float;
// flash_prefill_kernel.cuh picks it by T): CUDA cores (FFMA), no TF32, so
// nothing is rounded below fp32. Thread (ty, tx) of a 16 x 8 grid owns rows
// ty + 16r (r < 4) of the block and keys tx + 8k of the tile, and O columns
// tx + 8c. P goes through this warp's slice of shared memory (fp32, never
// rounded): the lanes that share a row of P.V are not the lanes that formed
// its probabilities.
#pragma once

#include "kernels/flash_prefill/flash_prefill_layout.cuh"

namespace attncheck::kernels::flash {

// Raw scores sc[r][kk] = q(row ty + 16r) . k(key tx + 8kk), float4 loads.
template <int D, int BN, int S>
__device__ __forceinline__ void qk_tile_f32(float (&sc)[4][BN / 8], const float* sQ, const float* sK, int ty, int tx) {
    constexpr int R = 4, KPT = BN / 8;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) sc[r][kk] = 0.0f;
#pragma unroll 2
    for (int c = 0; c < D; c += 4) {
        float4 qv[R];
#pragma unroll
        for (int r = 0; r < R; ++r) qv[r] = *reinterpret_cast<const float4*>(sQ + (ty + 16 * r) * S + c);
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) {
            const float4 kv = *reinterpret_cast<const float4*>(sK + (tx + 8 * kk) * S + c);
#pragma unroll
            for (int r = 0; r < R; ++r) {
                float x = sc[r][kk];
                x = fmaf(qv[r].x, kv.x, x);
                x = fmaf(qv[r].y, kv.y, x);
                x = fmaf(qv[r].z, kv.z, x);
                x = fmaf(qv[r].w, kv.w, x);
                sc[r][kk] = x;
            }
        }
    }
}

// This thread's probabilities into the P slice (row stride p_stride<BN>()).
template <int BN>
__device__ __forceinline__ void store_p_f32(float* sP, const float (&sc)[4][BN / 8], int ty, int tx) {
    constexpr int R = 4, KPT = BN / 8, SP = p_stride<BN>();
    __syncwarp(); // this warp's reads of its P rows (previous tile) are done
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) sP[(ty + 16 * r) * SP + tx + 8 * kk] = sc[r][kk];
    __syncwarp(); // P rows of this warp visible to its lanes (only this warp reads them)
}

// acc[r][c] += sum over the tile's keys of P(row ty + 16r) V(column tx + 8c).
template <int D, int BN, int S>
__device__ __forceinline__ void pv_tile_f32(float (&acc)[4][D / 8], const float* sP, const float* sV, int ty, int tx) {
    constexpr int R = 4, FC = D / 8, SP = p_stride<BN>();
#pragma unroll 2
    for (int k = 0; k < BN; k += 4) {
        float4 pv[R];
#pragma unroll
        for (int r = 0; r < R; ++r) pv[r] = *reinterpret_cast<const float4*>(sP + (ty + 16 * r) * SP + k);
#pragma unroll
        for (int kq = 0; kq < 4; ++kq) {
#pragma unroll
            for (int c = 0; c < FC; ++c) {
                const float vv = sV[(k + kq) * S + tx + 8 * c];
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    const float pr = kq == 0 ? pv[r].x : kq == 1 ? pv[r].y : kq == 2 ? pv[r].z : pv[r].w;
                    acc[r][c] = fmaf(pr, vv, acc[r][c]);
                }
            }
        }
    }
}

} // namespace attncheck::kernels::flash
