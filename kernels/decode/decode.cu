// Decode attention: one query token per sequence against that sequence's KV
// cache. One thread block per (sequence, q head), kThreads threads, a single
// pass of online softmax over kTile-key tiles aligned to key 0 that cover the
// row's key range [lo, hi) (causal bottom-right and sliding window come from
// attention_common.hpp). Per tile:
//   1. scores: warp w takes keys w, w + kWarps, ...; its lanes split the
//      channels (2-element vector loads when head_dim is even) and an xor
//      butterfly sums them; lane 0 masks (hidden keys get masked_score<M>())
//      and writes the score to shared memory;
//   2. every thread reads the tile's scores and forms the tile max, the new
//      running max m and the rescale factor alpha = exp(m_old - m_new);
//   3. one thread per key writes p_j = exp(s_j - m_new) to shared memory;
//   4. every thread updates the row sum l = l * alpha + sum_j p_j in key
//      order (so all threads hold the same l, bit for bit);
//   5. thread t rescales and accumulates P.V for channels 2t and 2t + 1.
// Two barriers per tile: after step 1 and after step 3.
// At the end O = acc / l is stored in T and LSE = m + log(l) in fp32; a row
// whose running max is still -inf (empty cache, nothing visible) gets O = 0
// and LSE = -inf.
//
// Limits: q_len must be 0 or 1 per sequence, head_dim <= kMaxHeadDim (256);
// any GQA ratio, any kv length. K and V are read straight from global memory
// (each element once per block): for GQA every q head of a group re-reads
// its kv head, which decode_gqa avoids; from the contiguous tensors or, for a
// paged cache, from its pool through the block table (kv_row_offset,
// kernels/common/paged_kv_rows.hpp). fp32 throughout, expf (not __expf).
// The CPU twin is kernels/decode/decode_cpu.cpp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

#include "engine/cuda/check.cuh"
#include "engine/cuda/kernel_clock.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/decode_probe.cuh"
#include "kernels/common/decode_rules.hpp"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/paged_kv_device.cuh"
#include "kernels/decode/decode.hpp"

namespace attncheck::kernels {

namespace {

// Keys per online-softmax tile (the declared profile's kv_tile; must equal
// kTile in decode_cpu.cpp). 64 keys give each of the 4 warps 16 dot products
// per tile, enough to hide load latency, while the tile's scores and exps
// fit in 512 bytes of shared memory.
constexpr int kTile = 64;
constexpr int kWarpSize = 32;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
// Largest head_dim: in P.V thread t owns channels 2t and 2t + 1.
constexpr int kMaxHeadDim = kDecodeMaxHeadDim;
constexpr int kChannelsPerThread = 2;
constexpr unsigned kFullMask = 0xffffffffu;

static_assert(kChannelsPerThread * kThreads >= kMaxHeadDim, "P.V needs an owner thread for every channel");
static_assert(kTile <= kThreads, "step 3 computes one exp per thread, one thread per key of the tile");
static_assert(kMaxHeadDim % 2 == 0, "q is read from shared memory as float2 pairs");

template <class T, Mutant M>
__global__ void __launch_bounds__(kThreads)
    decode_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ o,
                  float* __restrict__ lse, const int* __restrict__ q_start, const int* __restrict__ kv_start,
                  const int* __restrict__ q_lens, const int* __restrict__ kv_lens, PagedTableView paged, AttnShape s,
                  DeviceProbeView probe) {
    const int head = blockIdx.x, seq = blockIdx.y;
    // q_len 0: the sequence has no row (the host rejected q_len > 1). The
    // whole block leaves before any barrier.
    if (q_lens[seq] != 1) return;
    const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
    const int d = s.head_dim, kv_len = kv_lens[seq];
    const int kvh = kv_head_of<M>(s, head), vh = v_head_of<M>(s, kvh);
    const auto [pos, lo, hi, first_visible, scale] = decode_row_keys<M>(s, kv_len);
    const bool probing = probe.active && probe.seq == seq && probe.head == head && probe.token == 0;
    // Row of Q, O and LSE; K/V element (token j, head h) of this sequence is
    // at ((kv_start + j) * n_kv_heads + h) * d.
    const long long row = static_cast<long long>(q_start[seq]) * s.n_q_heads + head;
    const long long kv_base = kv_start[seq];

    __shared__ __align__(16) float q_s[kMaxHeadDim];
    __shared__ float s_tile[kTile]; // masked, scaled scores of the tile
    __shared__ float p_tile[kTile]; // exp(s_j - m_new)

    for (int c = tid; c < d; c += kThreads) q_s[c] = q_loaded<M>(to_f(q[row * d + c]), c);
    __syncthreads();

    const bool pairs = d % 2 == 0;
    const int c0 = kChannelsPerThread * tid; // this thread's P.V channels: c0, c0 + 1
    float m = -INFINITY, l = 0.0f;
    float acc[kChannelsPerThread] = {0.0f, 0.0f};
    int t_begin, t_end;
    covering_tiles(lo, hi, kTile, t_begin, t_end);
    for (int t = t_begin; t < t_end; ++t) {
        const int j0 = t * kTile, n = min(kTile, kv_len - j0);
        // 1. Scores. The jj loop is uniform across a warp, so every lane
        //    reaches the shuffles.
        for (int jj = warp; jj < n; jj += kWarps) {
            const int j = j0 + jj;
            const T* krow = k + kv_row_offset<M>(paged, kv_base, seq, j, kvh, s.n_kv_heads, d);
            float dot = 0.0f;
            if (pairs) {
                for (int i = lane; i < d / 2; i += kWarpSize) {
                    const float2 kk = load_pair(krow + 2 * i);
                    const float2 qq = reinterpret_cast<const float2*>(q_s)[i];
                    dot += qq.x * kk.x;
                    dot += qq.y * kk.y;
                }
            } else {
                for (int c = lane; c < d; c += kWarpSize) dot += q_s[c] * to_f(krow[c]);
            }
            for (int off = kWarpSize / 2; off > 0; off /= 2) dot += __shfl_xor_sync(kFullMask, dot, off);
            if (lane == 0) {
                const float scaled = dot * scale;
                // Mask by replacing the score (never by adding to it): a NaN
                // key the mask hides cannot leak.
                const float masked = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                s_tile[jj] = masked;
                if (probing) {
                    probe.raw[j] = dot;
                    probe.scaled[j] = scaled;
                    probe.masked[j] = masked;
                }
            }
        }
        __syncthreads();
        // 2. Tile max, running max, rescale factor: every thread, same order.
        float tile_max = -INFINITY;
        for (int jj = 0; jj < n; ++jj) tile_max = nan_max(tile_max, s_tile[jj]);
        const float m_new = nan_max(m, tile_max);
        // Nothing above -inf yet: shift by 0 so that exp(-inf - shift) = 0
        // rather than exp(-inf - -inf) = NaN.
        const float shift = softmax_shift<M>(m_new == -INFINITY ? 0.0f : m_new);
        // Before the first tile with a finite score (l, acc) are 0 and stay 0.
        const float alpha = m == -INFINITY ? 0.0f : expf(softmax_shift<M>(m) - shift);
        // 3. Exps, one thread per key.
        if (tid < n) p_tile[tid] = expf(s_tile[tid] - shift);
        __syncthreads();
        // 4. Row sum, key order (as the CPU twin).
        l = l * alpha;
        for (int jj = 0; jj < n; ++jj)
            if (counts_in_normalizer<M>(j0 + jj, first_visible)) l = accumulate<M>(l, p_tile[jj]);
        // 5. P.V for channels c0, c0 + 1.
        if constexpr (M != Mutant::online_no_rescale) {
#pragma unroll
            for (int i = 0; i < kChannelsPerThread; ++i) acc[i] = acc[i] * alpha;
        }
        if (c0 < d) {
            for (int jj = 0; jj < n; ++jj) {
                const float pj = p_tile[jj];
                // A hidden key has p exactly 0: skipping it keeps its V (NaN
                // padding, say) out of O. A finite sentinel's p is not 0.
                if (pj == 0.0f) continue;
                const T* vrow = v + kv_row_offset<M>(paged, kv_base, seq, j0 + jj, vh, s.n_kv_heads, d);
                float2 vv;
                if (pairs) {
                    vv = load_pair(vrow + c0);
                } else {
                    vv.x = to_f(vrow[c0]);
                    vv.y = c0 + 1 < d ? to_f(vrow[c0 + 1]) : 0.0f;
                }
                acc[0] = accumulate<M>(acc[0], pj * vv.x);
                acc[1] = accumulate<M>(acc[1], pj * vv.y);
            }
        }
        m = m_new;
        if (probing && tid == 0 && t - t_begin < probe.max_tiles) {
            probe.tile_max[t - t_begin] = m;
            probe.tile_sum[t - t_begin] = l;
        }
        // No barrier needed here: the next tile's step 1 rewrites s_tile,
        // whose last readers (steps 2 and 3) are behind this tile's second
        // barrier, and its step 3 rewrites p_tile only after the next
        // tile's first barrier, which every reader of p_tile (steps 4 and
        // 5) must reach first.
    }

    T* orow = o + row * d;
    if (m == -INFINITY) { // no key scored above -inf: the fully masked convention
        for (int c = tid; c < d; c += kThreads) {
            orow[c] = from_f<T>(0.0f);
            if (probing) probe.o[c] = 0.0f;
        }
        if (tid == 0) lse[row] = -INFINITY;
    } else {
#pragma unroll
        for (int i = 0; i < kChannelsPerThread; ++i) {
            const int c = c0 + i;
            if (c < d) {
                const T out = from_f<T>(acc[i] / l);
                orow[c] = out;
                if (probing) probe.o[c] = to_f(out);
            }
        }
        if (tid == 0) lse[row] = softmax_shift<M>(m) + logf(l);
    }
    if (probing && tid == 0) {
        // scalars[1] (max exp) is filled on the host with the exps.
        probe.scalars[0] = m;
        probe.scalars[2] = m == -INFINITY ? 0.0f : l;
    }
}

template <class T, Mutant M>
Observation launch(DeviceProblem<T>& dp, const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const DecodeProbe<M> dprobe(p, dp.shape, probe, kTile);
    const KvOnDevice<T> kv(dp, p); // contiguous, or a paged cache's pools
    const dim3 grid(static_cast<unsigned>(p.n_q_heads), static_cast<unsigned>(p.batch()));
    timed_kernels([&] {
        decode_kernel<T, M><<<grid, kThreads>>>(dp.q.get(), kv.k, kv.v, dp.o.get(), dp.lse.get(), dp.q_start.get(),
                                                dp.kv_start.get(), dp.q_lens.get(), dp.kv_lens.get(), kv.paged,
                                                dp.shape, dprobe.view());
        CUDA_CHECK_LAUNCH();
    });
    Observation obs = dp.download(kv.guards()); // synchronizes, checks every guard band
    dprobe.finish(obs);
    return obs;
}

// Production kernels for every dtype; mutant kernels for fp16 only (keeps
// the build from multiplying; decode_unsupported says so for the rest).
template <class T>
Observation run_on(DeviceProblem<T>& dp, const AttentionProblem& p, Mutant m,
                   const std::optional<ProbeRequest>& probe) {
    return dispatch_mutant<&cuda_builds<Family::decode, std::is_same_v<T, __half>>>(
        m, "decode", [&](auto mc) { return launch<T, decltype(mc)::value>(dp, p, probe); });
}

std::string cuda_unsupported(const AttentionProblem& p, Mutant m) {
    return decode_family_unsupported(Family::decode, "decode", p.q_lens, p.head_dim, p.dtype, Backend::cuda, m);
}

} // namespace

Observation decode_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (std::string why = cuda_unsupported(p, m); !why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode");
    return with_device_problem(p, [&](auto& dp) { return run_on(dp, p, m, probe); });
}

} // namespace attncheck::kernels
