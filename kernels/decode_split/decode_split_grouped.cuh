// Split-KV decode, phase 1 for decode sequences, on tensor cores: the
// production path of decode_split for sequences of one query token when
// head_dim is 64 or 128 and the inputs are fp16 or bf16 (decode_split.cu
// dispatches; the portable phase 1 there takes every other row).
//
// Algorithm. One block per (split, kv head, sequence) serves every q head of
// the kv head's GQA group (up to kRowsPerBlock = 16 of them, the M of one
// mma.m16n8k16; a larger group is cut over blockIdx.y), so each K and V
// element crosses the memory bus once per group and is read from shared
// memory by ldmatrix straight into mma fragments, never converted on CUDA
// cores. The group's query rows are the rows of the A operand (rows past the
// group are zero and never written out; with at most 8 q heads, the usual
// case, rows 8-15 are not even scored). The split's keys [ka, kb)
// (split_keys, as in the portable path and the CPU twin) stream through a
// kStages-deep ring of shared-memory stages of kStageKeys = 2 x kTile keys,
// filled by 16-byte cp.async copies (each thread copies the same 16-byte
// column of every eighth or sixteenth key row: pointer increments only).
//
// A stage is two online-softmax tiles of kTile keys, the twin's tiles; warp
// w holds keys [16w, 16w + 16) of the stage, half of tile w / 2:
//   1. warp w forms its scores, S = Q K^T over its 16 keys (fp32
//      accumulation), scales and masks them, and posts each row's max of
//      them;                                                     [barrier]
//   2. every warp moves the running max tile by tile in key order, exactly
//      as the twin does (a tile's max is the max of its halves), so a
//      tile's exps use the max after that tile; warp w forms its exps, posts
//      each row's sum of them (fp32) and writes P rounded to T into shared
//      memory;                                                   [barrier]
//   3. warp w owns head_dim / 4 output channels: for each tile in key order
//      it rescales its accumulator by online_alpha and adds the tile's P V
//      (an mma from zero, then one fp32 add: the fp16_accumulation mutant
//      rounds there), and moves l the same way (the two halves' sums added
//      in key order).
// The partial (m, l, acc) goes to the scratch layout the portable path
// writes, and the same merge kernel finishes.
//
// Rounding: the profile of decode_split (decode_split_cpu.cpp) declares P
// rounded to T before P.V and tensor-core accumulation (u_acc 2^-23) for
// fp16/bf16 on CUDA; the twin rounds P the same way. The order of additions
// inside a dot product and inside a tile's sums is the tensor core's and the
// shuffle tree's, not the twin's left-to-right order (fp32 sums within the
// same gamma_n).
//
// Shared memory: kStages * 2 * kStageKeys rows of (D + kPadElems) elements of
// T, Q and P tiles of 16 rows, and the half tiles' row maxima and sums:
// 75 KB at D = 128 (two stages), 59 KB at D = 64 (three): three blocks per
// SM. Why small stages and several blocks: ncu on a first
// version with 128-key stages (one 4-warp block per SM) showed one warp per
// scheduler issuing every 4 cycles (0.25 issued per cycle, DRAM at 49%):
// latency-bound; more resident warps hide what one warp's chain cannot.
// Mutant builds: fp16, D = 64 only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/mma_m16n8k16.cuh"
#include "kernels/decode_split/decode_split.hpp"

namespace attncheck::kernels::decode_split_grouped {

using namespace decode_split_detail;

constexpr int kWarp = 32;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarp;
// q heads served per block: the 16 rows of the mma's A operand.
constexpr int kRowsPerBlock = 16;
// Keys per stage: two online-softmax tiles, 16 keys (two n-tiles) per warp.
constexpr int kStageKeys = 2 * kTile;
constexpr int kWarpKeys = kStageKeys / kWarps;
// Stages of the ring. A stage is 34 KB of K and V at D = 128 (18 KB at
// D = 64). At D = 128, two stages (one in flight while one is computed) fit
// three blocks per SM, exactly the 228 KB of shared memory; measured on the
// H200 against three stages at two blocks per SM, three blocks were 1-3%
// faster on every anchor row (more warps to hide the chain of one). At
// D = 64, three stages fit three blocks. Either way ~100 KB of loads are in
// flight per SM, above the bandwidth-latency product of one SM's share of
// HBM (~32 B/ns x ~1.5 us).
template <int D>
constexpr int stages_for() {
    return D == 128 ? 2 : 3;
}
// Shared-memory row pad: 16 bytes per row, so that the eight 16-byte rows an
// ldmatrix phase reads (or the eight rows a quarter-warp writes) start 4
// banks apart and hit 32 distinct banks.
constexpr int kPadElems = 8;
constexpr int kPStride = kStageKeys + kPadElems; // elements between rows of the P tile
constexpr unsigned kFullMask = 0xffffffffu;

static_assert(kTile == 32 && kWarpKeys == 16, "a warp scores 2 n-tiles of 8 keys; a tile is 2 k-steps of P.V");
static_assert(kWarps == 4, "P.V splits head_dim in four");

// Blocks per kv head: a group of more than kRowsPerBlock q heads is cut.
__host__ __device__ constexpr int parts_of(int group) { return (group + kRowsPerBlock - 1) / kRowsPerBlock; }

// The head dims the grouped kernel is built for.
__host__ __device__ constexpr bool grouped_head_dim(int d) { return d == 64 || d == 128; }

__host__ __device__ constexpr int row_elems(int d) { return d + kPadElems; }

template <class T, int D>
constexpr size_t smem_bytes() {
    return static_cast<size_t>(stages_for<D>()) * 2 * kStageKeys * row_elems(D) * sizeof(T) // K, V ring
           + static_cast<size_t>(kRowsPerBlock) * row_elems(D) * sizeof(T)                  // Q
           + static_cast<size_t>(kRowsPerBlock) * kPStride * sizeof(T)                      // P
           + static_cast<size_t>(2) * kWarps * kRowsPerBlock * sizeof(float);               // half-tile max, sum
}

// grid = (num_splits, n_kv_heads * parts, batch), parts = ceil(group / kRowsPerBlock).
template <class T, int D, Mutant M>
__global__ void __launch_bounds__(kThreads)
    grouped_partial_kernel(AttnShape s, const T* __restrict__ Q, const T* __restrict__ K, const T* __restrict__ V,
                           SeqArrays seqs, PagedTableView paged, const int* __restrict__ group_heads, int num_splits,
                           float* __restrict__ part_ml, float* __restrict__ part_acc, DeviceProbeView probe) {
    static_assert(grouped_head_dim(D), "grouped path: head_dim 64 or 128");
    constexpr int kStages = stages_for<D>();
    constexpr int kChunks = D / 8;        // 16-byte chunks per key row
    constexpr int kStride = row_elems(D); // elements between key rows in a stage
    constexpr int kStage = 2 * kStageKeys * kStride;
    constexpr int kKSteps = D / 16;                    // k-steps of Q.K^T
    constexpr int kWarpCols = D / kWarps;              // output channels per warp in P.V
    constexpr int kColTiles = kWarpCols / 8;           // their n-tiles of 8 channels
    constexpr int kRowsPerPass = kThreads / kChunks;   // key rows one pass of the block copies
    constexpr int kPasses = kStageKeys / kRowsPerPass; // passes per stage
    static_assert(kColTiles % 2 == 0, "V fragments are loaded for pairs of n-tiles (ldmatrix.x4.trans)");
    static_assert(kThreads % kChunks == 0 && kStageKeys % kRowsPerPass == 0, "whole passes of whole rows");

    const int b = blockIdx.z;
    // Decode rows only (the host sends other cases to the portable path); a
    // q_len = 0 sequence has no row. The whole block leaves before any barrier.
    if (seqs.q_lens[b] != 1) return;
    const int split = blockIdx.x;
    const int g = s.n_q_heads / s.n_kv_heads;
    const int parts = parts_of(g);
    const int kvh = blockIdx.y / parts, first = (blockIdx.y % parts) * kRowsPerBlock;
    const int rows = min(kRowsPerBlock, g - first);
    const int halves = rows > 8 ? 2 : 1; // fragment row halves that hold q heads (block-uniform)
    const int kv_len = seqs.kv_lens[b], vh = v_head_of<M>(s, kvh);
    const int pos = query_position<M>(1, kv_len, 0);
    int lo, hi; // the row's visible range; lo is its first visible key (normalizer mutant)
    key_range<M>(s, kv_len, pos, lo, hi);
    int ka, kb;
    split_keys<M>(s, kv_len, num_splits, split, pos, ka, kb);
    const float scale = score_scale<M>(s.scale);
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int gr = lane >> 2, t4 = lane & 3; // fragment rows gr, gr + 8 and column pair t4 of this lane
    const long long token = seqs.q_start[b];

    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* stages = reinterpret_cast<T*>(smem_raw);
    T* q_s = stages + kStages * kStage;
    T* p_s = q_s + kRowsPerBlock * kStride;
    float* hmax_s = reinterpret_cast<float*>(p_s + kRowsPerBlock * kPStride); // [kWarps][kRowsPerBlock]
    float* hsum_s = hmax_s + kWarps * kRowsPerBlock;

    const long long kv_stride = static_cast<long long>(s.n_kv_heads) * D; // between consecutive keys
    const long long kv0 = static_cast<long long>(seqs.kv_start[b]) * kv_stride;
    const T* __restrict__ Kb = K + kv0 + static_cast<long long>(kvh) * D;
    const T* __restrict__ Vb = V + kv0 + static_cast<long long>(vh) * D;
    const int n_stages = (kb - ka + kStageKeys - 1) / kStageKeys;

    // Stage t into its ring slot: this thread's 16-byte column lc of key rows
    // lr, lr + kRowsPerPass, ...; keys past kb are zero-filled (their scores
    // are set to -inf and their P to 0, never read as data).
    // A paged cache: each row's address through the block table (the
    // source pointers are then the pools).
    const int lr = tid / kChunks, lc = (tid % kChunks) * 8;
    const long long pass_step = kRowsPerPass * kv_stride;
    auto load_stage = [&](int t) {
        T* ks = stages + (t % kStages) * kStage + lr * kStride + lc;
        T* vs = ks + kStageKeys * kStride;
        const int r0 = ka + t * kStageKeys + lr;
        const long long off = static_cast<long long>(r0) * kv_stride + lc;
#pragma unroll
        for (int p = 0; p < kPasses; ++p) {
            const int j = r0 + p * kRowsPerPass;
            const bool in = j < kb;
            const T* kp = Kb + off + p * pass_step;
            const T* vp = Vb + off + p * pass_step;
            if (paged.page_size && in) {
                // One table lookup for both: K and V share the pool row, only the head differs.
                const long long k_off = kv_row_offset<M>(paged, 0, b, j, kvh, s.n_kv_heads, D);
                kp = K + k_off + lc;
                vp = V + k_off + static_cast<long long>(vh - kvh) * D + lc;
            }
            cp_async_16(ks + p * kRowsPerPass * kStride, in ? kp : K, in ? 16 : 0);
            cp_async_16(vs + p * kRowsPerPass * kStride, in ? vp : V, in ? 16 : 0);
        }
    };
#pragma unroll
    for (int t = 0; t < kStages - 1; ++t) {
        if (t < n_stages) load_stage(t);
        cp_async_commit(); // an empty group keeps the wait count uniform
    }

    // Query rows of this block's heads, as loaded, back in T (q_loaded only
    // zeroes channels, so this is exact); rows past the group are zero.
    for (int i = tid; i < kRowsPerBlock * D; i += kThreads) {
        const int r = i / D, c = i % D;
        T x = from_f<T>(0.0f);
        if (r < rows) {
            const int h = group_heads[kvh * g + first + r];
            x = from_f<T>(q_loaded<M>(to_f(Q[(token * s.n_q_heads + h) * D + c]), c));
        }
        q_s[r * kStride + c] = x;
    }
    __syncthreads();         // q_s complete
    uint32_t qa[kKSteps][4]; // A fragments of Q, kept for the whole split
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks)
        ldsm_x4(qa[ks], q_s + ((lane & 7) + ((lane >> 3) & 1) * 8) * kStride + ks * 16 + (lane >> 4) * 8);

    // This lane's rows gr and gr + 8: head (or -1), probed?
    int head[2];
    bool probed[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = gr + 8 * h;
        head[h] = r < rows ? group_heads[kvh * g + first + r] : -1;
        probed[h] = r < rows && probe.active && b == probe.seq && head[h] == probe.head && probe.token == 0;
    }

    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    // C fragments of this warp's channels: (i, e) is row gr + 8 (e >> 1), channel 8i + 2 t4 + (e & 1).
    float acc[kColTiles][4];
#pragma unroll
    for (int i = 0; i < kColTiles; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][e] = 0.0f;

    for (int t = 0; t < n_stages; ++t) {
        cp_async_wait<kStages - 2>(); // this thread's copies of stage t have landed
        // Every thread's copies of stage t are visible, and every warp is done
        // with stage t - 1 (its ring slot, P and the half-tile statistics).
        __syncthreads();
        if (t + kStages - 1 < n_stages) load_stage(t + kStages - 1);
        cp_async_commit();

        const T* ks = stages + (t % kStages) * kStage;
        const T* vs = ks + kStageKeys * kStride;
        const int s0 = ka + t * kStageKeys; // first key of the stage

        // 1. This warp's scores: sc[h][n] is row gr + 8h, key j0 + 8 (n >> 1) + 2 t4 + (n & 1).
        const int j0 = s0 + warp * kWarpKeys, nk = min(kWarpKeys, kb - j0); // nk <= 0: no key here
        float sc[2][4];
        {
            float sf[2][4] = {};
            if (nk > 0) { // warp-uniform
                const T* kt = ks + warp * kWarpKeys * kStride;
#pragma unroll
                for (int kk = 0; kk < kKSteps; ++kk) {
                    uint32_t bb[4]; // b0, b1 of keys 0-7, then of keys 8-15
                    ldsm_x4(bb, kt + (((lane >> 4) & 1) * 8 + (lane & 7)) * kStride + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma16816<T>(sf[0], qa[kk], bb[0], bb[1]);
                    mma16816<T>(sf[1], qa[kk], bb[2], bb[3]);
                }
            }
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (h >= halves) break;
                float hmax = -INFINITY;
#pragma unroll
                for (int n = 0; n < 4; ++n) {
                    const int jj = (n >> 1) * 8 + 2 * t4 + (n & 1), j = j0 + jj;
                    float v = -INFINITY; // keys past the split's end hold no key
                    if (jj < nk) {
                        const float raw = sf[n >> 1][2 * h + (n & 1)];
                        const float scaled = raw * scale;
                        // Mask by replacing the score: a NaN key the mask hides cannot leak.
                        v = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                        if (probed[h]) {
                            probe.raw[j] = raw;
                            probe.scaled[j] = scaled;
                            probe.masked[j] = v;
                        }
                    }
                    sc[h][n] = v;
                    hmax = ds_max(hmax, v);
                }
                hmax = ds_max(hmax, __shfl_xor_sync(kFullMask, hmax, 1));
                hmax = ds_max(hmax, __shfl_xor_sync(kFullMask, hmax, 2));
                if (t4 == 0) hmax_s[warp * kRowsPerBlock + gr + 8 * h] = hmax;
            }
        }
        __syncthreads(); // every half tile's row maxima posted

        // 2. The running max after each tile of the stage, in key order (the
        // twin's m_new = max(m, tile max), tile by tile; an empty tile leaves
        // it), then this warp's exps, sums and P.
        float mt[2][2] = {{m[0], m[0]}, {m[1], m[1]}};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            if (h >= halves) break;
            float run = m[h];
#pragma unroll
            for (int tile = 0; tile < 2; ++tile) {
                const float* hm = hmax_s + 2 * tile * kRowsPerBlock + gr + 8 * h;
                run = ds_max(run, ds_max(hm[0], hm[kRowsPerBlock]));
                mt[h][tile] = run;
            }
        }
        if (nk > 0) { // warp-uniform
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (h >= halves) break;
                const float mine = warp < 2 ? mt[h][0] : mt[h][1]; // the max after this warp's tile
                float sum = 0.0f, p[4];
#pragma unroll
                for (int n = 0; n < 4; ++n) {
                    const int jj = (n >> 1) * 8 + 2 * t4 + (n & 1);
                    p[n] = online_exp<M>(sc[h][n], mine);
                    if (jj < nk && counts_in_normalizer<M>(j0 + jj, lo)) sum = accumulate<M>(sum, p[n]);
                }
                sum = accumulate<M>(sum, __shfl_xor_sync(kFullMask, sum, 1));
                sum = accumulate<M>(sum, __shfl_xor_sync(kFullMask, sum, 2));
                if (t4 == 0) hsum_s[warp * kRowsPerBlock + gr + 8 * h] = sum;
                T* pr = p_s + (gr + 8 * h) * kPStride + warp * kWarpKeys + 2 * t4;
                *reinterpret_cast<uint32_t*>(pr) = pack2<T>(p[0], p[1]);
                *reinterpret_cast<uint32_t*>(pr + 8) = pack2<T>(p[2], p[3]);
            }
        } else {
            // No key here (the tile's other half has some): nothing joins the
            // row sums, and P is 0, since P.V reads the whole tile (its V rows
            // are zero-filled, but P left from an earlier stage, or never
            // written, could be anything).
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (t4 == 0) hsum_s[warp * kRowsPerBlock + gr + 8 * h] = 0.0f;
                T* pr = p_s + (gr + 8 * h) * kPStride + warp * kWarpKeys + 2 * t4;
                *reinterpret_cast<uint32_t*>(pr) = 0u;
                *reinterpret_cast<uint32_t*>(pr + 8) = 0u;
            }
        }
        __syncthreads(); // P and the half-tile sums posted

        // 3. Tile by tile in key order: rescale, then add the tile's P V over this warp's channels.
#pragma unroll
        for (int tile = 0; tile < 2; ++tile) {
            if (s0 + tile * kTile >= kb) break; // an empty tile (block-uniform), the stage's last
            float alpha[2] = {1.0f, 1.0f};
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (h >= halves) break;
                alpha[h] = online_alpha<M>(tile == 0 ? m[h] : mt[h][0], mt[h][tile]);
                const float* hs = hsum_s + 2 * tile * kRowsPerBlock + gr + 8 * h;
                l[h] = accumulate<M>(accumulate<M>(l[h] * alpha[h], hs[0]), hs[kRowsPerBlock]);
            }
            float pv[kColTiles][4] = {};
#pragma unroll
            for (int kk = 0; kk < kTile / 16; ++kk) {
                const T* p0 = p_s + gr * kPStride + tile * kTile + kk * 16 + 2 * t4;
                uint32_t pa[4]; // rows gr, gr + 8 at keys 2 t4 (+1), then at 8 + 2 t4 (+1)
                pa[0] = *reinterpret_cast<const uint32_t*>(p0);
                pa[2] = *reinterpret_cast<const uint32_t*>(p0 + 8);
                pa[1] = halves > 1 ? *reinterpret_cast<const uint32_t*>(p0 + 8 * kPStride) : 0u;
                pa[3] = halves > 1 ? *reinterpret_cast<const uint32_t*>(p0 + 8 * kPStride + 8) : 0u;
                const T* vt = vs + (tile * kTile + kk * 16) * kStride + warp * kWarpCols;
#pragma unroll
                for (int i = 0; i < kColTiles; i += 2) {
                    uint32_t bb[4]; // b0, b1 of n-tile i, then of i + 1
                    ldsm_x4_trans(bb,
                                  vt + (((lane >> 3) & 1) * 8 + (lane & 7)) * kStride + i * 8 + ((lane >> 4) & 1) * 8);
                    mma16816<T>(pv[i], pa, bb[0], bb[1]);
                    mma16816<T>(pv[i + 1], pa, bb[2], bb[3]);
                }
            }
#pragma unroll
            for (int i = 0; i < kColTiles; ++i)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float a = acc[i][e];
                    if constexpr (M != Mutant::online_no_rescale) a = a * alpha[e >> 1];
                    acc[i][e] = accumulate<M>(a, pv[i][e]);
                }
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) m[h] = mt[h][1];
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
        if (head[h] < 0) continue;
        const long long row = token * s.n_q_heads + head[h]; // the LSE index
        if (warp == 0 && t4 == 0) {
            part_ml[ml_index(row, num_splits, split)] = m[h];
            part_ml[ml_index(row, num_splits, split) + 1] = l[h];
            if (probed[h] && split < probe.max_splits) {
                probe.split_max[split] = m[h];
                probe.split_sum[split] = l[h];
            }
        }
        float* __restrict__ out = part_acc + acc_index(row, num_splits, split, D) + warp * kWarpCols + 2 * t4;
#pragma unroll
        for (int i = 0; i < kColTiles; ++i) {
            out[i * 8] = acc[i][2 * h];
            out[i * 8 + 1] = acc[i][2 * h + 1];
        }
    }
}

} // namespace attncheck::kernels::decode_split_grouped
