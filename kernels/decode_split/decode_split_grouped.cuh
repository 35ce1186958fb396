// Split-KV decode, phase 1 for decode sequences: the production path of
// decode_split for sequences of one query token when head_dim is 64 or 128
// and the inputs are fp16 or bf16 (decode_split.cu dispatches; the portable
// phase 1 there takes every other row).
//
// Algorithm. One block per (split, kv head, sequence) serves every q head of
// the kv head's GQA group (up to kRowsPerBlock of them; a larger group is cut
// over blockIdx.y), so each K and V tile crosses the memory bus once per
// group. The split's keys [ka, kb) (split_keys, as in the portable path and
// the CPU twin) are walked in tiles of kTile keys starting at ka; the tiles
// stream through a kStages-deep ring of shared-memory stages filled by
// 16-byte cp.async copies, so that several tiles per block are in flight
// while one is computed, with one block barrier per tile (the one that hands
// a stage back to the loads).
// Each warp owns whole rows (q heads): warp w computes rows w and
// w + kWarps. Per tile and row, lane jj scores key ka + t * kTile + jj: the
// whole dot product over head_dim from its key's row in shared memory and
// the query row (fp32, in shared memory), in kDotParts interleaved partial
// sums (short dependency chains; the CPU twin sums left to right); then a butterfly gives the tile max, the online step
// moves (m, l) and rescales the accumulator by online_alpha, and P.V adds the tile's keys in key order, lane c owning
// head_dim / 32 adjacent channels, p_j broadcast by shuffle. The partial (m, l, acc) goes to the same scratch layout
// the portable path writes, and the same merge kernel finishes.
//
// Rounding is the portable path's and the twin's (fp32 everywhere, expf):
// only the order of additions differs (the dot product's partial sums, the
// tile's row sum as a butterfly), fp32 sums within the same gamma_n.
//
// Shared memory: kStages * 2 * kTile rows of (D + kPadElems) elements of T,
// plus kRowsPerBlock * D fp32 query values: 55 KB at D = 128 (four blocks
// per SM on Hopper), 29 KB at D = 64. Mutant builds: fp16, D = 64 only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/decode_split/decode_split.hpp"

namespace attncheck::kernels::decode_split_grouped {

using namespace decode_split_detail;

constexpr int kWarp = 32;
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarp;
// q heads served per block: two rows per warp covers the usual groups (4 for
// 32/8, 7 for 14/2 and 28/4, 8 for 64/8) in one block.
constexpr int kRowsPerBlock = 8;
constexpr int kRowsPerWarp = kRowsPerBlock / kWarps;
// Stages of the ring: two tiles in flight while one is computed. At D = 128
// a stage is 16 KB of K and V; four blocks per SM (the shared-memory limit at
// three stages) keep ~128 KB of loads in flight, well above the
// bandwidth-latency product of one SM's share of HBM (~40 KB). Four stages
// allowed only three blocks (12 warps) per SM, and ncu showed the kernel
// latency-bound (half the issue slots idle, 0.66 eligible warps per
// scheduler): more warps pay more than deeper prefetch.
constexpr int kStages = 3;
// Shared-memory row pad: a 16-byte shift per key row, so that the 8 lanes of
// a quarter-warp reading 16 bytes each of 8 different key rows hit 8
// distinct bank quads.
constexpr int kPadElems = 8;
constexpr unsigned kFullMask = 0xffffffffu;
// Independent partial sums of a dot product: a head_dim-long chain of
// dependent FMAs (4 cycles each) would otherwise set each tile's latency.
constexpr int kDotParts = 4;

static_assert(kTile == kWarp, "lane jj scores key jj of the tile");
static_assert(kRowsPerBlock % kWarps == 0, "every warp owns the same number of row slots");
static_assert(kDotParts == 4, "the dot product's partial sums are added as a pair of pairs");

// Blocks per kv head: a group of more than kRowsPerBlock q heads is cut.
__host__ __device__ constexpr int parts_of(int group) { return (group + kRowsPerBlock - 1) / kRowsPerBlock; }

// The head dims the grouped kernel is built for.
__host__ __device__ constexpr bool grouped_head_dim(int d) { return d == 64 || d == 128; }

__host__ __device__ constexpr int row_elems(int d) { return d + kPadElems; }

template <class T, int D>
constexpr size_t smem_bytes() {
    return static_cast<size_t>(kStages) * 2 * kTile * row_elems(D) * sizeof(T) +
           static_cast<size_t>(kRowsPerBlock) * D * sizeof(float);
}

// N adjacent 16-bit values of shared memory (N = 2, 4 or 8: one 4-, 8- or
// 16-byte load, aligned by the layout) as floats.
template <class T, int N>
__device__ __forceinline__ void load_n(const T* p, float (&x)[N]) {
    using Vec = std::conditional_t<N == 2, unsigned, std::conditional_t<N == 4, uint2, uint4>>;
    static_assert(sizeof(Vec) == N * sizeof(T), "one vector load of N 16-bit values");
    const Vec raw = *reinterpret_cast<const Vec*>(p);
    const T* h = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < N; ++i) x[i] = to_f(h[i]);
}

// grid = (num_splits, n_kv_heads * parts, batch), parts = ceil(group / kRowsPerBlock).
template <class T, int D, Mutant M>
__global__ void __launch_bounds__(kThreads)
    grouped_partial_kernel(AttnShape s, const T* __restrict__ Q, const T* __restrict__ K, const T* __restrict__ V,
                           SeqArrays seqs, const int* __restrict__ group_heads, int num_splits,
                           float* __restrict__ part_ml, float* __restrict__ part_acc, DeviceProbeView probe) {
    static_assert(grouped_head_dim(D), "grouped path: head_dim 64 or 128");
    constexpr int kChunks = D / 8;        // 16-byte chunks per key row
    constexpr int kCpl = D / kWarp;       // P.V channels per lane
    constexpr int kStride = row_elems(D); // elements between key rows in a stage
    constexpr int kStage = 2 * kTile * kStride;

    const int b = blockIdx.z;
    // Decode rows only (the host sends other cases to the portable path); a
    // q_len = 0 sequence has no row. The whole block leaves before any barrier.
    if (seqs.q_lens[b] != 1) return;
    const int split = blockIdx.x;
    const int g = s.n_q_heads / s.n_kv_heads;
    const int parts = parts_of(g);
    const int kvh = blockIdx.y / parts, first = (blockIdx.y % parts) * kRowsPerBlock;
    const int rows = min(kRowsPerBlock, g - first);
    const int kv_len = seqs.kv_lens[b], vh = v_head_of<M>(s, kvh);
    const int pos = query_position<M>(1, kv_len, 0);
    int lo, hi; // the row's visible range; lo is its first visible key (normalizer mutant)
    key_range<M>(s, kv_len, pos, lo, hi);
    int ka, kb;
    split_keys<M>(s, kv_len, num_splits, split, pos, ka, kb);
    const float scale = score_scale<M>(s.scale);
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const long long token = seqs.q_start[b];

    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* stages = reinterpret_cast<T*>(smem_raw);
    float* q_s = reinterpret_cast<float*>(smem_raw + static_cast<size_t>(kStages) * kStage * sizeof(T));

    // Query rows of this block's heads, as loaded; read after the first tile's barrier.
    for (int i = tid; i < rows * D; i += kThreads) {
        const int r = i / D, c = i % D;
        const int h = group_heads[kvh * g + first + r];
        q_s[i] = q_loaded<M>(to_f(Q[(token * s.n_q_heads + h) * D + c]), c);
    }

    const long long kv_stride = static_cast<long long>(s.n_kv_heads) * D; // between consecutive keys
    const long long kv0 = static_cast<long long>(seqs.kv_start[b]) * kv_stride;
    const T* __restrict__ Kb = K + kv0 + static_cast<long long>(kvh) * D;
    const T* __restrict__ Vb = V + kv0 + static_cast<long long>(vh) * D;
    const int n_tiles = (kb - ka + kTile - 1) / kTile;

    // Tile t into its stage; keys past kb are zero-filled and never read as
    // data (their lanes score -inf and P.V stops at the tile's last key).
    auto load_tile = [&](int t) {
        T* ks = stages + (t % kStages) * kStage;
        T* vs = ks + kTile * kStride;
        const int j0 = ka + t * kTile;
        for (int i = tid; i < kTile * kChunks; i += kThreads) {
            const int r = i / kChunks, ch = i % kChunks;
            const bool in = j0 + r < kb;
            const long long off = static_cast<long long>(in ? j0 + r : ka) * kv_stride + ch * 8;
            cp_async_16(ks + r * kStride + ch * 8, Kb + off, in ? 16 : 0);
            cp_async_16(vs + r * kStride + ch * 8, Vb + off, in ? 16 : 0);
        }
    };
#pragma unroll
    for (int t = 0; t < kStages - 1; ++t) {
        if (t < n_tiles) load_tile(t);
        cp_async_commit(); // an empty group keeps the wait count uniform
    }

    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kCpl];
    int head[kRowsPerWarp];
    bool probed[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int r = warp + rr * kWarps;
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int i = 0; i < kCpl; ++i) acc[rr][i] = 0.0f;
        head[rr] = r < rows ? group_heads[kvh * g + first + r] : -1;
        probed[rr] = r < rows && probe.active && b == probe.seq && head[rr] == probe.head && probe.token == 0;
    }

    for (int t = 0; t < n_tiles; ++t) {
        cp_async_wait<kStages - 2>(); // this thread's copies of tile t have landed
        // Every thread's copies of tile t are visible, and every warp is done
        // with tile t - 1, whose stage the next load refills.
        __syncthreads();
        if (t + kStages - 1 < n_tiles) load_tile(t + kStages - 1);
        cp_async_commit();

        const T* ks = stages + (t % kStages) * kStage;
        const T* vs = ks + kTile * kStride;
        const int j0 = ka + t * kTile, nt = min(kTile, kb - j0), j = j0 + lane;

        // Scores of this warp's rows for key j: one pass over the key's row.
        float dot[kRowsPerWarp], parts[kRowsPerWarp][kDotParts];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr)
#pragma unroll
            for (int k = 0; k < kDotParts; ++k) parts[rr][k] = 0.0f;
        if (lane < nt) {
#pragma unroll
            for (int ch = 0; ch < kChunks; ++ch) {
                float kf[8];
                load_n(ks + lane * kStride + ch * 8, kf);
#pragma unroll
                for (int rr = 0; rr < kRowsPerWarp; ++rr) {
                    if (warp + rr * kWarps >= rows) continue; // warp-uniform
                    const float* qr = q_s + (warp + rr * kWarps) * D + ch * 8;
                    const float4 qa = *reinterpret_cast<const float4*>(qr);
                    const float4 qb = *reinterpret_cast<const float4*>(qr + 4);
                    float x = parts[rr][ch % kDotParts];
                    x += qa.x * kf[0];
                    x += qa.y * kf[1];
                    x += qa.z * kf[2];
                    x += qa.w * kf[3];
                    x += qb.x * kf[4];
                    x += qb.y * kf[5];
                    x += qb.z * kf[6];
                    x += qb.w * kf[7];
                    parts[rr][ch % kDotParts] = x;
                }
            }
        }
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr)
            dot[rr] = (parts[rr][0] + parts[rr][1]) + (parts[rr][2] + parts[rr][3]);

#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; ++rr) {
            if (warp + rr * kWarps >= rows) continue; // warp-uniform: every lane reaches the shuffles
            float sc = -INFINITY;                     // lanes past the split's keys hold no key
            if (lane < nt) {
                const float scaled = dot[rr] * scale;
                // Mask by replacing the score: a NaN key the mask hides cannot leak.
                sc = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                if (probed[rr]) {
                    probe.raw[j] = dot[rr];
                    probe.scaled[j] = scaled;
                    probe.masked[j] = sc;
                }
            }
            float tile_max = sc;
#pragma unroll
            for (int off = kWarp / 2; off > 0; off /= 2)
                tile_max = ds_max(tile_max, __shfl_xor_sync(kFullMask, tile_max, off));
            tile_max = __shfl_sync(kFullMask, tile_max, 0); // one sign for a zero max
            const float m_new = ds_max(m[rr], tile_max);
            const float alpha = online_alpha<M>(m[rr], m_new);
            const float pj = online_exp<M>(sc, m_new);
            float part = lane < nt && counts_in_normalizer<M>(j, lo) ? pj : 0.0f;
#pragma unroll
            for (int off = kWarp / 2; off > 0; off /= 2)
                part = accumulate<M>(part, __shfl_xor_sync(kFullMask, part, off));
            part = __shfl_sync(kFullMask, part, 0);
            l[rr] = accumulate<M>(l[rr] * alpha, part);
            if constexpr (M != Mutant::online_no_rescale) {
#pragma unroll
                for (int i = 0; i < kCpl; ++i) acc[rr][i] = acc[rr][i] * alpha;
            }
            // Unrolled over the whole tile (nt is warp-uniform), so the
            // shuffles and loads of later keys issue ahead of the FMAs.
#pragma unroll
            for (int jj = 0; jj < kTile; ++jj) {
                if (jj >= nt) break;
                const float pk = __shfl_sync(kFullMask, pj, jj);
                float vf[kCpl];
                load_n(vs + jj * kStride + lane * kCpl, vf);
#pragma unroll
                for (int i = 0; i < kCpl; ++i) acc[rr][i] = accumulate<M>(acc[rr][i], pk * vf[i]);
            }
            m[rr] = m_new;
        }
    }

#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        if (warp + rr * kWarps >= rows) continue;
        const long long row = token * s.n_q_heads + head[rr]; // the LSE index
        if (lane == 0) {
            part_ml[ml_index(row, num_splits, split)] = m[rr];
            part_ml[ml_index(row, num_splits, split) + 1] = l[rr];
            if (probed[rr] && split < probe.max_splits) {
                probe.split_max[split] = m[rr];
                probe.split_sum[split] = l[rr];
            }
        }
        float* __restrict__ out = part_acc + acc_index(row, num_splits, split, D) + lane * kCpl;
#pragma unroll
        for (int i = 0; i < kCpl; ++i) out[i] = acc[rr][i];
    }
}

} // namespace attncheck::kernels::decode_split_grouped
