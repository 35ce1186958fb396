// The tensor-core compute path of the flash_prefill kernel (fp16 and bf16;
// flash_prefill_kernel.cuh picks it by T). Each warp owns 16 query rows;
// per key tile it forms S = Q K^T with mma.sync.m16n8k16 (fp32
// accumulation) from fragments loaded out of shared memory (ldmatrix: Q and K
// plain, V transposed), re-packs the probabilities of the S accumulator
// fragment, rounded to T, as the A operand of P.V in registers (the FA2
// trick, no trip through shared memory), and adds P V into the O accumulator
// fragments. Fragment (i, e) of a 16 x 8 C tile holds row g + 8 (e >> 1),
// column 8i + 2t + (e & 1), for lane = 4g + t.
#pragma once

#include <cstdint>

#include "kernels/common/mma_m16n8k16.cuh"
#include "kernels/flash_prefill/flash_prefill_layout.cuh"

namespace attncheck::kernels::flash {

// Fragment loads through ldmatrix (true) or plain shared-memory loads (false);
// both fill the same m16n8k16 fragment layout. The plain path is the simpler
// one to read and a fallback for bisecting.
constexpr bool kUseLdmatrix = true;

// Raw scores of this warp's 16 rows against the BN keys of the K tile:
// sc[r][kk] is row g + 8r, key (kk >> 1) * 8 + 2t + (kk & 1).
template <class T, int D, int BN, int S>
__device__ __forceinline__ void qk_tile_mma(float (&sc)[2][2 * (BN / 8)], const T* sQ, const T* sK, int warp,
                                            int lane) {
    constexpr int NT = BN / 8; // n-tiles of 8 keys
    float sf[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) sf[nt][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
        uint32_t a[4];
        const int k0 = ks * 16;
        if constexpr (kUseLdmatrix) {
            // matrices: rows 0-7 | 8-15 at k0, rows 0-7 | 8-15 at k0 + 8
            ldsm_x4(a, sQ + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + k0 + (lane >> 4) * 8);
        } else {
            const int g = lane >> 2, t = lane & 3;
            const T* q0 = sQ + (warp * 16 + g) * S + k0 + 2 * t;
            a[0] = *reinterpret_cast<const uint32_t*>(q0);
            a[1] = *reinterpret_cast<const uint32_t*>(q0 + 8 * S);
            a[2] = *reinterpret_cast<const uint32_t*>(q0 + 8);
            a[3] = *reinterpret_cast<const uint32_t*>(q0 + 8 * S + 8);
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt += 2) {
            uint32_t bb[4]; // b0, b1 of n-tile nt, then of nt + 1
            if constexpr (kUseLdmatrix) {
                // matrices: keys nt*8 + 0-7 at k0 | k0 + 8, keys nt*8 + 8-15 at k0 | k0 + 8
                ldsm_x4(bb, sK + (nt * 8 + ((lane >> 4) & 1) * 8 + (lane & 7)) * S + k0 + ((lane >> 3) & 1) * 8);
            } else {
                const int g = lane >> 2, t = lane & 3;
                const T* k0p = sK + (nt * 8 + g) * S + k0 + 2 * t;
                bb[0] = *reinterpret_cast<const uint32_t*>(k0p);
                bb[1] = *reinterpret_cast<const uint32_t*>(k0p + 8);
                bb[2] = *reinterpret_cast<const uint32_t*>(k0p + 8 * S);
                bb[3] = *reinterpret_cast<const uint32_t*>(k0p + 8 * S + 8);
            }
            mma16816<T>(sf[nt], a, bb[0], bb[1]);
            mma16816<T>(sf[nt + 1], a, bb[2], bb[3]);
        }
    }
    // Fragment (nt, e): row g + 8 (e >> 1), key nt*8 + 2t + (e & 1).
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[e >> 1][nt * 2 + (e & 1)] = sf[nt][e];
}

// P (fp32 in sc, as qk_tile_mma laid it out) rounded to T and packed as the A
// fragments of P.V: pa[kk] covers keys 16kk .. 16kk + 15.
template <class T, int BN>
__device__ __forceinline__ void pack_p_mma(uint32_t (&pa)[BN / 16][4], const float (&sc)[2][2 * (BN / 8)]) {
    constexpr int PK = BN / 16; // k-steps of 16 keys
#pragma unroll
    for (int kk = 0; kk < PK; ++kk) {
        // keys 16kk + 2t (+1) and 16kk + 8 + 2t (+1): sc[r][4kk + 0..3]
        pa[kk][0] = pack2<T>(sc[0][4 * kk + 0], sc[0][4 * kk + 1]); // row g,     keys 16kk + 2t
        pa[kk][1] = pack2<T>(sc[1][4 * kk + 0], sc[1][4 * kk + 1]); // row g + 8, keys 16kk + 2t
        pa[kk][2] = pack2<T>(sc[0][4 * kk + 2], sc[0][4 * kk + 3]); // row g,     keys 16kk + 8 + 2t
        pa[kk][3] = pack2<T>(sc[1][4 * kk + 2], sc[1][4 * kk + 3]); // row g + 8, keys 16kk + 8 + 2t
    }
}

// acc += P V(tile): acc[dn] is the C fragment of O columns 8dn .. 8dn + 7.
template <class T, int D, int BN, int S>
__device__ __forceinline__ void pv_tile_mma(float (&acc)[D / 8][4], const uint32_t (&pa)[BN / 16][4], const T* sV,
                                            int lane) {
    constexpr int PK = BN / 16, DN = D / 8; // k-steps of 16 keys, O n-tiles of 8 columns
#pragma unroll
    for (int kk = 0; kk < PK; ++kk) {
#pragma unroll
        for (int dn = 0; dn < DN; dn += 2) {
            uint32_t bb[4]; // b0, b1 of O n-tile dn, then of dn + 1
            if constexpr (kUseLdmatrix) {
                // matrices (transposed): keys 16kk + 0-7 | 8-15 at column dn*8, then at dn*8 + 8
                ldsm_x4_trans(bb,
                              sV + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * S + dn * 8 + ((lane >> 4) & 1) * 8);
            } else {
                const int g = lane >> 2, t = lane & 3;
                const uint16_t* v0 = reinterpret_cast<const uint16_t*>(sV) + (kk * 16 + 2 * t) * S + dn * 8 + g;
                bb[0] = pack_raw(v0[0], v0[S]);
                bb[1] = pack_raw(v0[8 * S], v0[9 * S]);
                bb[2] = pack_raw(v0[8], v0[S + 8]);
                bb[3] = pack_raw(v0[8 * S + 8], v0[9 * S + 8]);
            }
            mma16816<T>(acc[dn], pa[kk], bb[0], bb[1]);
            mma16816<T>(acc[dn + 1], pa[kk], bb[2], bb[3]);
        }
    }
}

} // namespace attncheck::kernels::flash
