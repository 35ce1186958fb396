// flash_prefill's kernel: FlashAttention-2 style prefill on the GPU.
//
// Algorithm. One block (4 warps) owns kBlockM = 64 query rows of one
// (sequence, q head) and walks the key tiles [t_lo, t_hi) that cover the
// union of those rows' visible ranges (block_tile_range; tiles of block_n(D)
// keys aligned to key 0, in increasing order), so tiles wholly outside every
// row's causal/window range are never loaded. Q (64 x D), one K tile and one
// V tile live in shared memory (flash_prefill_layout.cuh), filled by cp.async
// with zero fill for rows past q_len / kv_len (nothing past a sequence is
// ever read). Per tile: S = Q K^T, masked (keys past kv_len and keys
// key_visible hides; tiles inside every row's range skip the mask), scaled
// into log2 units (log2 e folded into the scale so the exponential is one
// exp2f); online softmax in registers (flash_prefill_softmax.cuh: running max
// m and partial row sum l per row, acc and l rescaled by exp2(m_old - m_new));
// P = exp2(s2 - m) rounded to T and O += P V. At the end O = acc / l is
// rounded to T and LSE = m ln 2 + log l (fp32). A row whose running max
// stayed -inf (nothing visible in any visited tile, or no tile at all) gives
// O = 0, LSE = -inf.
//
// Two compute paths, chosen at compile time by T, for S = Q K^T, handing P
// to P.V, and O += P V: fp16/bf16 on tensor cores
// (flash_prefill_tensor_core_path.cuh: mma.sync.m16n8k16, fp32 accumulation,
// P re-packed in registers), fp32 on CUDA cores (flash_prefill_fp32_path.cuh:
// FFMA, no TF32, P through shared memory). Everything else -- tiling, mask,
// softmax, pipeline, epilogue, probe -- is this one body.
//
// Pipeline (one buffer each for K and V, FA2's overlap):
//   wait; sync [B1]  -> K(n) visible; every warp is done with V(n-1)
//   issue V(n);  S = Q K(n)^T;  softmax
//   wait; sync [B2]  -> V(n) visible; every warp is done with K(n)
//   issue K(n+1);  O += P V(n)
// Mutant::missing_barrier drops B2: a warp that is through its own copies
// reads V(n) rows other warps' copies may not have landed yet (stale V(n-1)
// or, on the first tile, uninitialized shared memory) and starts K(n+1)
// copies over the K tile other warps may still be reading.
//
// Limits: head_dim 64, 80, 96, 128, 256. Shared memory per block (dynamic):
//   fp16/bf16: (64 + 2 BN)(D + 8) * 2 B  = 27.0 / 33.0 / 39.0 / 51.0 / 66.0 KB for D = 64 / 80 / 96 / 128 / 256
//   fp32:      (64 + 2 BN)(D + 4) * 4 B + 64 (BN + 8) * 4 B
//              = 69 / 81 / 93 / 117 / 140 KB
// (BN = 64, and 32 for D = 256). Known property of every tiled kernel of
// this kind: a NaN/inf in a V row that is masked for some row of the block
// but lies in a visited tile reaches that row as 0 * NaN.
//
// Mutants (template parameter, `if constexpr`; hooks of attention_common.hpp
// unless noted): scale_* via score_scale; finite_mask_sentinel via
// masked_score (masked scores in visited tiles, keys past kv_len included,
// become -1e4, so a row with nothing visible no longer has a -inf running
// max and averages V); mask_* via key_visible; top_left_causal via
// query_position; no_row_max via softmax_shift; normalizer_drops_key via
// counts_in_normalizer (first key of the row's range); gqa_map_mod and
// v_wrong_head via the head maps; partial_q_load rewrites the Q tile through
// q_loaded; online_no_rescale skips the O-accumulator rescale (l is still
// rescaled); fp16_accumulation rounds the O accumulator to fp16 once per key
// tile and the row sum at every add; missing_barrier drops B2 (CUDA only).
// Only Mutant::none skips the mask on interior tiles.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/common/attention_common.hpp"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/mma_m16n8k16.cuh"
#include "kernels/flash_prefill/flash_prefill.hpp"
#include "kernels/flash_prefill/flash_prefill_fp32_path.cuh"
#include "kernels/flash_prefill/flash_prefill_layout.cuh"
#include "kernels/flash_prefill/flash_prefill_softmax.cuh"
#include "kernels/flash_prefill/flash_prefill_tensor_core_path.cuh"

namespace attncheck::kernels::flash {

template <class T, int D, Mutant M>
__device__ __forceinline__ void flash_prefill_body(const FlashParams<T>& P, const DeviceProbeView& probe) {
    constexpr bool kMma = kIsMma<T>;
    constexpr int BN = block_n(D);
    constexpr int S = row_stride<T, D>();
    // mma path: per warp 16 rows; S tile = NT n-tiles of 8 keys; P.V has
    // PK k-steps of 16 keys and DN n-tiles of 8 output columns.
    constexpr int NT = BN / 8;
    constexpr int PK = BN / 16;
    constexpr int DN = D / 8;
    // fp32 path: 4 rows x (BN / 8) keys and 4 rows x (D / 8) columns per thread.
    constexpr int FK = BN / 8;
    constexpr int FC = D / 8;
    // Per-thread layout of the generic softmax: R rows x KPT keys, RED lanes per row.
    constexpr int R = kMma ? 2 : 4;
    constexpr int KPT = kMma ? 2 * NT : FK;
    constexpr int RED = kMma ? 4 : 8;
    static_assert(D % 16 == 0, "head_dim must be a multiple of the mma k-step (16)");
    static_assert(BN % 16 == 0 && NT % 2 == 0, "BLOCK_N: whole k-steps of 16 keys, n-tiles in pairs (ldmatrix.x4)");
    static_assert(DN % 2 == 0, "O n-tiles are loaded in pairs (ldmatrix.x4.trans)");
    static_assert(!kMma || (kBlockM + 2 * BN) * S * sizeof(T) <= 227 * 1024, "shared memory over the sm_90 limit");
    static_assert(kMma || smem_bytes<T, D>() <= 227 * 1024, "shared memory over the sm_90 limit");
    static_assert(kMma || (D % 4 == 0 && BN % 4 == 0), "fp32 path: float4 shared loads");

    extern __shared__ __align__(16) unsigned char flash_smem[];
    T* sQ = reinterpret_cast<T*>(flash_smem);
    T* sK = sQ + kBlockM * S;
    T* sV = sK + BN * S;
    float* sP = reinterpret_cast<float*>(sV + BN * S); // fp32 path only

    const AttnShape sh = P.shape;
    const int b = blockIdx.z, h = blockIdx.y;
    const int q_len = P.q_lens[b];
    const int i0 = (gridDim.x - 1 - blockIdx.x) * kBlockM; // longest causal work first
    if (i0 >= q_len) return;                               // whole block: before any barrier
    const int kv_len = P.kv_lens[b];
    const int i_end = min(q_len, i0 + kBlockM);
    const int kvh = kv_head_of<M>(sh, h);
    const int vh = v_head_of<M>(sh, kvh);
    const long long q_row = static_cast<long long>(sh.n_q_heads) * D;   // token stride of Q and O
    const long long kv_row = static_cast<long long>(sh.n_kv_heads) * D; // token stride of K and V
    const T* Qg = P.q + (static_cast<long long>(P.q_start[b]) + i0) * q_row + static_cast<long long>(h) * D;
    const T* Kg = P.k + static_cast<long long>(P.kv_start[b]) * kv_row + static_cast<long long>(kvh) * D;
    const T* Vg = P.v + static_cast<long long>(P.kv_start[b]) * kv_row + static_cast<long long>(vh) * D;

    int t_lo, t_hi;
    block_tile_range<M>(sh, q_len, kv_len, i0, i_end, BN, t_lo, t_hi);
    // A tile is interior when every valid row of the block sees all of its
    // keys (first row's hi, last row's lo; both monotone): no mask needed.
    int lo_last, hi_first, unused;
    key_range<M>(sh, kv_len, query_position<M>(q_len, kv_len, i_end - 1), lo_last, unused);
    key_range<M>(sh, kv_len, query_position<M>(q_len, kv_len, i0), unused, hi_first);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane >> 2, t = lane & 3;         // mma: group id and thread in group
    const int ty = threadIdx.x / 8, tx = lane & 7; // fp32: row group and key/column lane
    // Block-local row of this thread's r-th row.
    auto row_of = [&](int r) { return kMma ? warp * 16 + g + 8 * r : ty + 16 * r; };
    // Key (within the tile) of this thread's kk-th score of a row.
    auto key_of = [&](int kk) { return kMma ? (kk >> 1) * 8 + 2 * t + (kk & 1) : tx + 8 * kk; };
    const bool warp_active = kMma ? i0 + warp * 16 < q_len : i0 + 4 * warp < q_len;
    const bool lead = kMma ? t == 0 : tx == 0; // writes per-row scalars

    int pos[R], first_vis[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        pos[r] = query_position<M>(q_len, kv_len, i0 + row_of(r));
        first_vis[r] = 0;
        if constexpr (M == Mutant::normalizer_drops_key) {
            int lo, hi;
            key_range<M>(sh, kv_len, pos[r], lo, hi);
            first_vis[r] = lo < hi ? lo : -1;
        }
    }
    const float scale_nat = score_scale<M>(sh.scale);
    const float scale_log2 = scale_nat * kLog2e;
    const float masked_nat = masked_score<M>();
    const float masked_log2 = masked_nat * kLog2e;

    // Probe: which of this thread's rows (if any) is the probed one.
    int probe_r = -1;
    if (probe.active && probe.seq == b && probe.head == h && probe.token >= i0 && probe.token < i_end) {
#pragma unroll
        for (int r = 0; r < R; ++r)
            if (row_of(r) == probe.token - i0) probe_r = r;
    }

    float m[R], l[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    // O accumulator: mma C fragments acc[dn][0..3] (rows g, g+8; columns
    // dn*8 + 2t, +1), or fp32 acc[r][c] (row ty + 16r, column tx + 8c).
    constexpr int ACC0 = kMma ? DN : R;
    constexpr int ACC1 = kMma ? 4 : FC;
    float acc[ACC0][ACC1];
#pragma unroll
    for (int i = 0; i < ACC0; ++i)
#pragma unroll
        for (int j = 0; j < ACC1; ++j) acc[i][j] = 0.0f;

    // Prologue: Q tile and the first K tile.
    load_tile<T, D, kBlockM, S>(sQ, Qg, q_row, q_len - i0);
    if (t_lo < t_hi)
        load_tile<T, D, BN, S>(sK, Kg + static_cast<long long>(t_lo) * BN * kv_row, kv_row, kv_len - t_lo * BN);
    cp_async_commit();
    if constexpr (M == Mutant::partial_q_load) {
        cp_async_wait_all();
        __syncthreads();
        for (int idx = threadIdx.x; idx < kBlockM * D; idx += kThreads) {
            const int r = idx / D, c = idx % D;
            sQ[r * S + c] = from_f<T>(q_loaded<M>(to_f(sQ[r * S + c]), c));
        }
        // The first B1 below orders these stores before any read of Q.
    }

    for (int n = t_lo; n < t_hi; ++n) {
        const int j_base = n * BN;
        cp_async_wait_all();
        __syncthreads(); // B1: K(n) (and Q) visible; every warp is done reading V(n-1)
        if constexpr (M == Mutant::missing_barrier) {
            // A race shows only when warps drift apart, which a lightly loaded
            // GPU rarely does (without this the mutant changed 0 of 10 grid
            // cases on the H100, though racecheck flags it). Warp 0 issuing
            // its V(n) copies ~20 us late is the drift a busy SM produces.
            if (threadIdx.x / 32 == 0) __nanosleep(20000);
        }
        load_tile<T, D, BN, S>(sV, Vg + static_cast<long long>(j_base) * kv_row, kv_row, kv_len - j_base);
        cp_async_commit();

        bool interior = false;
        if constexpr (M == Mutant::none)
            interior = j_base + BN <= kv_len && lo_last <= j_base && j_base + BN <= hi_first;

        float sc[R][KPT];
        float resc[R];
        uint32_t pa[kMma ? PK : 1][4]; // mma: P as A fragments of P.V
        if (warp_active) {
            // ---- S = Q K(n)^T (raw scores, fp32)
            if constexpr (kMma)
                qk_tile_mma<T, D, BN, S>(sc, sQ, sK, warp, lane);
            else
                qk_tile_f32<D, BN, S>(sc, reinterpret_cast<const float*>(sQ), reinterpret_cast<const float*>(sK), ty,
                                      tx);

            // ---- probe: raw / scaled / masked scores of the probed row
            if (probe.active && probe_r >= 0) {
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    if (r != probe_r) continue;
#pragma unroll
                    for (int kk = 0; kk < KPT; ++kk) {
                        const int j = j_base + key_of(kk);
                        if (j >= kv_len) continue;
                        const bool vis = interior || key_visible<M>(sh, pos[r], j);
                        probe.raw[j] = sc[r][kk];
                        probe.scaled[j] = sc[r][kk] * scale_nat;
                        probe.masked[j] = vis ? sc[r][kk] * scale_nat : masked_nat;
                    }
                }
            }

            // ---- mask, online softmax, rescale O
            softmax_tile<M, R, KPT, RED>(sc, m, l, resc, sh, pos, first_vis, kv_len, j_base, interior, scale_log2,
                                         masked_log2, key_of);
            if constexpr (M != Mutant::online_no_rescale) {
#pragma unroll
                for (int i = 0; i < ACC0; ++i)
#pragma unroll
                    for (int j = 0; j < ACC1; ++j) {
                        if constexpr (kMma)
                            acc[i][j] *= resc[j >> 1]; // C fragment: rows g (e < 2), g + 8
                        else
                            acc[i][j] *= resc[i];
                    }
            }

            // ---- P: packed into A fragments (rounded to T), or to shared memory (fp32)
            if constexpr (kMma)
                pack_p_mma<T, BN>(pa, sc);
            else
                store_p_f32<BN>(sP, sc, ty, tx);

            // ---- probe: running max and row sum after this tile
            if (probe.active) {
                float ls[R];
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    ls[r] = l[r];
#pragma unroll
                    for (int off = 1; off < RED; off <<= 1) ls[r] += __shfl_xor_sync(0xffffffffu, ls[r], off);
                }
                if (probe_r >= 0 && lead && n - t_lo < probe.max_tiles) {
#pragma unroll
                    for (int r = 0; r < R; ++r)
                        if (r == probe_r) {
                            probe.tile_max[n - t_lo] = m[r] * kLn2;
                            probe.tile_sum[n - t_lo] = ls[r];
                        }
                }
            }
        }

        cp_async_wait_all();
        if constexpr (M != Mutant::missing_barrier) {
            __syncthreads(); // B2: V(n) visible; every warp is done reading K(n)
        }
        if (n + 1 < t_hi) {
            load_tile<T, D, BN, S>(sK, Kg + static_cast<long long>(j_base + BN) * kv_row, kv_row,
                                   kv_len - (j_base + BN));
            cp_async_commit();
        }

        if (warp_active) {
            // ---- O += P V(n)
            if constexpr (kMma)
                pv_tile_mma<T, D, BN, S>(acc, pa, sV, lane);
            else
                pv_tile_f32<D, BN, S>(acc, sP, reinterpret_cast<const float*>(sV), ty, tx);
            if constexpr (M == Mutant::fp16_accumulation) {
                // The mutant's O accumulator is rounded to fp16 once per key
                // tile (after the rescale and the tile's P.V); the row sum at
                // every add (softmax_tile). Same in the CPU twin.
#pragma unroll
                for (int i = 0; i < ACC0; ++i)
#pragma unroll
                    for (int j = 0; j < ACC1; ++j) acc[i][j] = accumulate<M>(acc[i][j], 0.0f);
            }
        }
    }

    // ---- epilogue
    cp_async_wait_all();      // no tile visited: the Q copies are still in flight
    __syncthreads();          // ... and other threads' copies land in rows this warp stages O into
    if (!warp_active) return; // no barrier below

#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int off = 1; off < RED; off <<= 1) l[r] = accumulate<M>(l[r], __shfl_xor_sync(0xffffffffu, l[r], off));

    // Normalize, round to T and stage this warp's rows in sQ (only this warp
    // ever reads those rows of sQ), then copy them out with 16-byte stores.
    bool empty[R];
    float final_shift[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        empty[r] = m[r] == -INFINITY; // the finite sentinel defeats exactly this test
        final_shift[r] = empty[r] ? 0.0f : softmax_shift<M>(m[r]);
    }
    if constexpr (kMma) {
#pragma unroll
        for (int dn = 0; dn < DN; ++dn)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const float o0 = empty[r] ? 0.0f : acc[dn][2 * r] / l[r];
                const float o1 = empty[r] ? 0.0f : acc[dn][2 * r + 1] / l[r];
                *reinterpret_cast<uint32_t*>(sQ + row_of(r) * S + dn * 8 + 2 * t) = pack2<T>(o0, o1);
            }
    } else {
        float* sQf = reinterpret_cast<float*>(sQ);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int c = 0; c < FC; ++c) sQf[row_of(r) * S + tx + 8 * c] = empty[r] ? 0.0f : acc[r][c] / l[r];
    }
    __syncwarp();
    {
        constexpr int kEpc = 16 / static_cast<int>(sizeof(T));
        constexpr int kCpr = D / kEpc;
        T* Og = P.o + (static_cast<long long>(P.q_start[b]) + i0) * q_row + static_cast<long long>(h) * D;
        for (int idx = lane; idx < 16 * kCpr; idx += 32) {
            const int rr = idx / kCpr, c = (idx % kCpr) * kEpc;
            const int row = kMma ? warp * 16 + rr : 4 * warp + (rr & 3) + 16 * (rr >> 2); // this warp's rows
            if (i0 + row < q_len)
                *reinterpret_cast<uint4*>(Og + row * q_row + c) = *reinterpret_cast<const uint4*>(sQ + row * S + c);
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int row = i0 + row_of(r);
        if (lead && row < q_len)
            P.lse[(static_cast<long long>(P.q_start[b]) + row) * sh.n_q_heads + h] =
                empty[r] ? -INFINITY : final_shift[r] * kLn2 + logf(l[r]);
    }

    // ---- probe: final row statistics, O, and the reconstructed stages
    if (probe.active) {
        if (probe_r >= 0) {
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r != probe_r) continue;
                // O as written (rounded to T), from the staged row.
                if constexpr (kMma) {
#pragma unroll
                    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
                        for (int e = 0; e < 2; ++e)
                            probe.o[dn * 8 + 2 * t + e] = to_f(sQ[row_of(r) * S + dn * 8 + 2 * t + e]);
                } else {
#pragma unroll
                    for (int c = 0; c < FC; ++c)
                        probe.o[tx + 8 * c] = reinterpret_cast<const float*>(sQ)[row_of(r) * S + tx + 8 * c];
                }
                if (lead) {
                    probe.scalars[0] = empty[r] ? -INFINITY : m[r] * kLn2;
                    probe.scalars[2] = l[r];
                }
            }
        }
        __syncwarp(); // the row's raw[] entries, written by the lanes sharing it, visible to its lead
        if (probe_r >= 0 && lead) {
            // The kernel never forms normalized P (O is normalized at the end):
            // exps and p are reconstructed from raw (as stored), the final row
            // max and row sum, in the kernel's log2 units, so exps are the
            // values the kernel summed (up to earlier tiles' rescales). Keys in
            // tiles never visited keep exps = p = 0.
            float mx = 0.0f;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r != probe_r || empty[r]) continue;
                const int j_end = min(kv_len, t_hi * BN);
                for (int j = t_lo * BN; j < j_end; ++j) {
                    const bool vis = key_visible<M>(sh, pos[r], j);
                    const float e = exp2f((vis ? __fmul_rn(probe.raw[j], scale_log2) : masked_log2) - final_shift[r]);
                    probe.exps[j] = e;
                    probe.p[j] = e / l[r];
                    mx = fmaxf(mx, e);
                }
            }
            probe.scalars[1] = mx;
        }
    }
}

// The two paths differ only in launch bounds. fp32: (128, 1) lets the
// register-heavy FFMA path use up to 255 registers; without the hint ptxas
// capped fp32 D = 80 at 168 registers and spilled (its 70-140 KB of shared
// memory allow at most 2-3 blocks per SM anyway). mma path: no hint (128-245
// registers, no spills; a min-blocks hint of 2 made ptxas use more).
template <class T, int D, Mutant M>
__global__ void __launch_bounds__(kThreads) flash_prefill_mma_kernel(FlashParams<T> P, DeviceProbeView probe) {
    flash_prefill_body<T, D, M>(P, probe);
}
template <int D, Mutant M>
__global__ void __launch_bounds__(kThreads, 1) flash_prefill_f32_kernel(FlashParams<float> P, DeviceProbeView probe) {
    flash_prefill_body<float, D, M>(P, probe);
}

} // namespace attncheck::kernels::flash
