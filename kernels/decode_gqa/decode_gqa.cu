// GQA decode: one query token per sequence, one thread block per (sequence,
// kv head, part of its q-head group). Each warp serves one q head of the
// group; the block loads every K tile and V tile of its kv head into shared
// memory once (as fp32) and all its warps use it, so K and V cross the
// memory bus once per group instead of once per q head as in `decode`.
//
// Single-pass online softmax over kTile = 32-key tiles aligned to key 0 that
// cover the row's key range [lo, hi) (causal bottom-right and sliding window
// from attention_common.hpp; all q heads of a sequence share the range).
// Per tile and warp: lane jj owns key jj and computes its whole dot product
// from shared memory (rows padded to an odd stride, so the 32 lanes hit 32
// distinct banks); hidden keys get masked_score<M>(); an xor butterfly gives
// the tile max; the running max m, the rescale exp(m_old - m_new), the
// exps, a butterfly row-sum contribution; then P.V with lane c owning
// channels c, c + 32, ... and p_j broadcast by shuffle. O = acc / l is stored
// in T, LSE = m + log(l) in fp32; a row whose running max is still -inf gets
// O = 0 and LSE = -inf.
//
// Limits: q_len 0 or 1 per sequence, head_dim <= kMaxHeadDim (256). Any
// group size: up to kHeadsPerBlock q heads share a block; a larger group is
// split over blockIdx.z, each part reloading the tiles. Shared memory is
// (2 * kTile * (head_dim | 1) + warps * head_dim) floats, up to 74 KB (the
// kernel opts in above 48 KB). The CPU twin is kernels/decode_gqa/decode_gqa_cpu.cpp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/check.cuh"
#include "engine/cuda/dynamic_smem.cuh"
#include "engine/cuda/kernel_clock.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/decode_probe.cuh"
#include "kernels/common/decode_rules.hpp"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/gqa_groups.hpp"
#include "kernels/decode_gqa/decode_gqa.hpp"
#include "kernels/decode_gqa/decode_gqa_on_device.hpp"

namespace attncheck::kernels {

namespace {

constexpr int kWarpSize = 32;
// Keys per tile: one per lane, so a tile's scores, max, exps and row sum are
// register values and warp shuffles, with no shared memory or barrier
// (profile kv_tile; must equal kTile in decode_gqa_cpu.cpp).
constexpr int kTile = kWarpSize;
// q heads per block, one warp each. 8 covers the usual groups (7 for 14/2
// and 28/4, 8 for 64/8) in one block, so each tile is loaded once per group.
constexpr int kHeadsPerBlock = 8;
constexpr int kMaxThreads = kHeadsPerBlock * kWarpSize;
// Largest head_dim: in P.V lane c owns channels c + 32 i, i < 8.
constexpr int kMaxHeadDim = kDecodeMaxHeadDim;
constexpr int kChannelsPerLane = kMaxHeadDim / kWarpSize;
constexpr unsigned kFullMask = 0xffffffffu;
// Without opting in, a kernel gets 48 KB of dynamic shared memory.
constexpr size_t kDefaultSmemLimit = 48 * 1024;

static_assert(kTile == kWarpSize, "lane jj owns key jj of the tile");
static_assert(kChannelsPerLane * kWarpSize == kMaxHeadDim, "every channel has an owner lane");

// Shared-memory row stride of the K and V tiles: odd, so that lane jj
// reading element c of row jj hits bank (jj * stride + c) % 32, distinct
// for the 32 lanes.
__host__ __device__ __forceinline__ int tile_stride(int d) { return d | 1; }

size_t smem_bytes(int d, int warps) {
    return (2 * static_cast<size_t>(kTile) * tile_stride(d) + static_cast<size_t>(warps) * d) * sizeof(float);
}

template <class T, Mutant M>
__global__ void __launch_bounds__(kMaxThreads)
    decode_gqa_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ o,
                      float* __restrict__ lse, const int* __restrict__ q_start, const int* __restrict__ kv_start,
                      const int* __restrict__ q_lens, const int* __restrict__ kv_lens,
                      const int* __restrict__ group_heads, AttnShape s, DeviceProbeView probe) {
    const int kvh = blockIdx.x, seq = blockIdx.y;
    // q_len 0: no row (the host rejected q_len > 1); the whole block leaves
    // before any barrier.
    if (q_lens[seq] != 1) return;
    const int warps = blockDim.x / kWarpSize;
    const int tid = threadIdx.x, lane = tid % kWarpSize, warp = tid / kWarpSize;
    const int g = s.n_q_heads / s.n_kv_heads;
    // This warp's q head: member `member` of kv head kvh's group. In the last
    // part of a group split over blockIdx.z some warps have none; they still
    // load tiles and reach every barrier.
    const int member = static_cast<int>(blockIdx.z) * warps + warp;
    const bool active = member < g;
    const int head = active ? group_heads[kvh * g + member] : -1;
    const int d = s.head_dim, ld = tile_stride(d), kv_len = kv_lens[seq];
    const int vh = v_head_of<M>(s, kvh);
    const auto [pos, lo, hi, first_visible, scale] = decode_row_keys<M>(s, kv_len);
    const bool probing = active && probe.active && probe.seq == seq && probe.head == head && probe.token == 0;
    const long long row = static_cast<long long>(q_start[seq]) * s.n_q_heads + head; // Q/O/LSE row (if active)
    const long long kv_base = kv_start[seq];

    extern __shared__ float smem[];
    float* k_s = smem;                        // [kTile][ld]
    float* v_s = k_s + kTile * ld;            // [kTile][ld]
    float* q_s = v_s + kTile * ld + warp * d; // this warp's q row [d]

    // Read only by its own warp, after the first tile's barrier.
    if (active)
        for (int c = lane; c < d; c += kWarpSize) q_s[c] = q_loaded<M>(to_f(q[row * d + c]), c);

    const bool pairs = d % 2 == 0;
    float m = -INFINITY, l = 0.0f;
    float acc[kChannelsPerLane];
#pragma unroll
    for (int i = 0; i < kChannelsPerLane; ++i) acc[i] = 0.0f;
    int t_begin, t_end;
    covering_tiles(lo, hi, kTile, t_begin, t_end);
    for (int t = t_begin; t < t_end; ++t) {
        const int j0 = t * kTile, n = min(kTile, kv_len - j0);
        // Load the tile once for the whole group: K rows of kvh, V rows of
        // vh, keys j0 .. j0 + n - 1; warp w takes rows w, w + warps, ...
        for (int r = warp; r < n; r += warps) {
            const T* kr = k + ((kv_base + j0 + r) * s.n_kv_heads + kvh) * d;
            const T* vr = v + ((kv_base + j0 + r) * s.n_kv_heads + vh) * d;
            float* kd = k_s + r * ld;
            float* vd = v_s + r * ld;
            if (pairs) {
                for (int i = lane; i < d / 2; i += kWarpSize) {
                    const float2 a = load_pair(kr + 2 * i), b = load_pair(vr + 2 * i);
                    kd[2 * i] = a.x;
                    kd[2 * i + 1] = a.y;
                    vd[2 * i] = b.x;
                    vd[2 * i + 1] = b.y;
                }
            } else {
                for (int c = lane; c < d; c += kWarpSize) {
                    kd[c] = to_f(kr[c]);
                    vd[c] = to_f(vr[c]);
                }
            }
        }
        __syncthreads();
        if (active) { // warp-uniform: every lane of the warp reaches the shuffles
            const int j = j0 + lane;
            float sc = -INFINITY; // lanes past the cache hold no key at all
            if (lane < n) {
                const float* kk = k_s + lane * ld;
                float dot = 0.0f;
                for (int c = 0; c < d; ++c) dot += q_s[c] * kk[c];
                const float scaled = dot * scale;
                // Mask by replacing the score: a NaN key the mask hides cannot leak.
                sc = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                if (probing) {
                    probe.raw[j] = dot;
                    probe.scaled[j] = scaled;
                    probe.masked[j] = sc;
                }
            }
            float tile_max = sc;
            for (int off = kWarpSize / 2; off > 0; off /= 2)
                tile_max = nan_max(tile_max, __shfl_xor_sync(kFullMask, tile_max, off));
            // Lanes may disagree on the sign of a zero max; take lane 0's.
            tile_max = __shfl_sync(kFullMask, tile_max, 0);
            const float m_new = nan_max(m, tile_max);
            // Nothing above -inf yet: shift by 0 (exp(-inf - 0) = 0, not NaN).
            const float shift = softmax_shift<M>(m_new == -INFINITY ? 0.0f : m_new);
            // Before the first tile with a finite score (l, acc) are 0 and stay 0.
            const float alpha = m == -INFINITY ? 0.0f : expf(softmax_shift<M>(m) - shift);
            const float pj = expf(sc - shift);
            float part = counts_in_normalizer<M>(j, first_visible) ? pj : 0.0f;
            for (int off = kWarpSize / 2; off > 0; off /= 2)
                part = accumulate<M>(part, __shfl_xor_sync(kFullMask, part, off));
            part = __shfl_sync(kFullMask, part, 0);
            l = accumulate<M>(l * alpha, part);
            if constexpr (M != Mutant::online_no_rescale) {
#pragma unroll
                for (int i = 0; i < kChannelsPerLane; ++i) acc[i] = acc[i] * alpha;
            }
            for (int jj = 0; jj < n; ++jj) {
                const float pk = __shfl_sync(kFullMask, pj, jj);
                // A hidden key has p exactly 0: skipping it keeps its V (NaN
                // padding, say) out of O. A finite sentinel's p is not 0.
                if (pk == 0.0f) continue;
                const float* vv = v_s + jj * ld;
#pragma unroll
                for (int i = 0; i < kChannelsPerLane; ++i) {
                    const int c = lane + i * kWarpSize;
                    if (c < d) acc[i] = accumulate<M>(acc[i], pk * vv[c]);
                }
            }
            m = m_new;
            if (probing && lane == 0 && t - t_begin < probe.max_tiles) {
                probe.tile_max[t - t_begin] = m;
                probe.tile_sum[t - t_begin] = l;
            }
        }
        __syncthreads(); // k_s and v_s are overwritten by the next tile
    }

    if (!active) return;
    T* orow = o + row * d;
    if (m == -INFINITY) { // no key scored above -inf: the fully masked convention
        for (int c = lane; c < d; c += kWarpSize) {
            orow[c] = from_f<T>(0.0f);
            if (probing) probe.o[c] = 0.0f;
        }
        if (lane == 0) lse[row] = -INFINITY;
    } else {
#pragma unroll
        for (int i = 0; i < kChannelsPerLane; ++i) {
            const int c = lane + i * kWarpSize;
            if (c < d) {
                const T out = from_f<T>(acc[i] / l);
                orow[c] = out;
                if (probing) probe.o[c] = to_f(out);
            }
        }
        if (lane == 0) lse[row] = softmax_shift<M>(m) + logf(l);
    }
    if (probing && lane == 0) {
        // scalars[1] (max exp) is filled on the host with the exps.
        probe.scalars[0] = m;
        probe.scalars[2] = m == -INFINITY ? 0.0f : l;
    }
}

// Grid: (kv head, sequence, part of the group); one warp per q head of a part.
struct GqaLaunch {
    dim3 grid;
    int threads;
    size_t smem;
};

template <class T, Mutant M>
GqaLaunch launch_shape(const AttnShape& s) {
    const int g = s.n_q_heads / s.n_kv_heads;
    const int warps = std::min(g, kHeadsPerBlock);
    const int parts = (g + warps - 1) / warps;
    const size_t smem = smem_bytes(s.head_dim, warps);
    if (smem > kDefaultSmemLimit) allow_max_dynamic_smem(decode_gqa_kernel<T, M>);
    return {dim3(static_cast<unsigned>(s.n_kv_heads), static_cast<unsigned>(s.batch), static_cast<unsigned>(parts)),
            warps * kWarpSize, smem};
}

template <class T, Mutant M>
Observation launch(DeviceProblem<T>& dp, const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const GqaLaunch L = launch_shape<T, M>(dp.shape);
    DeviceBuffer<int> heads(static_cast<size_t>(p.n_q_heads), "group_heads");
    heads.upload(group_table<M>(dp.shape));

    const DecodeProbe<M> dprobe(p, dp.shape, probe, kTile);
    timed_kernels([&] {
        decode_gqa_kernel<T, M><<<L.grid, L.threads, L.smem>>>(
            dp.q.get(), dp.k.get(), dp.v.get(), dp.o.get(), dp.lse.get(), dp.q_start.get(), dp.kv_start.get(),
            dp.q_lens.get(), dp.kv_lens.get(), heads.get(), dp.shape, dprobe.view());
        CUDA_CHECK_LAUNCH();
    });
    Observation obs = dp.download({heads.guards()}); // synchronizes, checks every guard band
    dprobe.finish(obs);
    return obs;
}

template <class T>
void launch_on_stream(const DecodeGqaOnDevice& a, cudaStream_t stream) {
    const GqaLaunch L = launch_shape<T, Mutant::none>(a.shape);
    decode_gqa_kernel<T, Mutant::none><<<L.grid, L.threads, L.smem, stream>>>(
        static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v), static_cast<T*>(a.o), a.lse,
        a.q_start, a.kv_start, a.q_lens, a.kv_lens, a.group_heads, a.shape, DeviceProbeView{});
    CUDA_CHECK_LAUNCH();
}

// Production kernels for every dtype; mutant kernels for fp16 only.
template <class T>
Observation run_on(DeviceProblem<T>& dp, const AttentionProblem& p, Mutant m,
                   const std::optional<ProbeRequest>& probe) {
    return dispatch_mutant<&cuda_builds<Family::decode_gqa, std::is_same_v<T, __half>>>(
        m, "decode_gqa", [&](auto mc) { return launch<T, decltype(mc)::value>(dp, p, probe); });
}

std::string cuda_unsupported(const AttentionProblem& p, Mutant m) {
    return decode_family_unsupported(Family::decode_gqa, "decode_gqa", p.q_lens, p.head_dim, p.dtype, Backend::cuda, m);
}

} // namespace

Observation decode_gqa_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (std::string why = cuda_unsupported(p, m); !why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode_gqa");
    return with_device_problem(p, [&](auto& dp) { return run_on(dp, p, m, probe); });
}

std::vector<int> decode_gqa_group_heads(const AttnShape& s) { return group_table<Mutant::none>(s); }

void decode_gqa_on_stream(DType dtype, const DecodeGqaOnDevice& a, cudaStream_t stream) {
    if (a.shape.head_dim < 1 || a.shape.head_dim > kMaxHeadDim || a.shape.n_kv_heads < 1 ||
        a.shape.n_q_heads % a.shape.n_kv_heads != 0)
        throw UnsupportedCase("decode_gqa_on_stream: head_dim outside [1, 256] or q heads not a multiple of kv heads");
    switch (dtype) {
        case DType::f16:
            return launch_on_stream<__half>(a, stream);
        case DType::bf16:
            return launch_on_stream<__nv_bfloat16>(a, stream);
        default:
            return launch_on_stream<float>(a, stream);
    }
}

} // namespace attncheck::kernels
