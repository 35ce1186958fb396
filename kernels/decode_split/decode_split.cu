// Split-KV decode (flash-decoding) on CUDA: two kernels and an fp32 scratch.
//
// Algorithm. Each query row (one (token, q head) pair of the packed varlen
// layout; q_len >= 1 rows per sequence, each independent, causal masks
// bottom-right) attends to its sequence's KV cache. The keys [0, kv_len) are
// cut into num_splits contiguous chunks of ceil(kv_len / num_splits) keys.
//   Phase 1 (split_partial_kernel): one block per (row, split). The block
//     walks the split's keys (the part of its chunk inside the row's visible
//     range, see split_keys) in tiles of kTile keys: each warp scores keys of
//     the tile (lanes split head_dim, shuffle reduction), then the block
//     moves the running max m once per tile, rescales (l, acc) by
//     exp(m_old - m_new) and adds the tile's exps to l and their V-weighted
//     sum to acc (one thread per head_dim channel, coalesced V rows). The
//     partial (m_i, l_i, acc_i) goes to scratch. A split with no visible key
//     writes m_i = -inf, l_i = 0, acc_i = 0.
//   Phase 2 (split_merge_kernel): one block per row, one thread per channel.
//     m = max_i m_i, w_i = exp(m_i - m) (0 for an empty split: the identity
//     of the merge), O = sum_i w_i acc_i / sum_i w_i l_i stored in T,
//     LSE = m + log(sum_i w_i l_i) in fp32. Every split empty: O = 0,
//     LSE = -inf.
// Everything accumulates in fp32; exp is the full-accuracy expf (<= 2 ulp).
// The grouped (tensor-core) phase 1 rounds P to T before P.V and accumulates
// on tensor cores; the profile declares that for fp16/bf16, and the portable
// phase 1, which keeps P in fp32, rounds less than declared.
// kernels/decode_split/decode_split_cpu.cpp is the CPU twin; kernels/decode_split/decode_split.hpp
// holds the chunking, the online-softmax step and the merge weight both use.
//
// Limits: head_dim <= 256 (query row in shared memory, 2 accumulator
// channels per thread); scratch rows * num_splits * (head_dim + 2) floats
// <= 2^28. Any GQA ratio, ragged batches, kv_len 0, q_len 0 sequences,
// num_splits > kv_len. Mutants are built for fp16 only.
//
// Two phase-1 kernels. Decode sequences (q_len = 1) at head_dim 64 or 128 in
// fp16 or bf16 run the grouped kernel of decode_split_grouped.cuh: one block
// per (split, kv head, sequence) for the whole GQA group, K and V streamed
// through a cp.async ring into mma.m16n8k16 fragments, the production path. Every other row runs the
// portable kernel below (a mixed batch launches both): a block of 4 warps
// per (row, split), the classic flash-decoding shape, K rows loaded once per
// q head, three block barriers a tile; correctness first. Both write the
// same partials in the same chunking and tiles, and share the merge kernel.
// decode_split_cuda_splits gives production callers a split count for the
// shape and the device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "engine/cuda/check.cuh"
#include "engine/cuda/device_buffer.cuh"
#include "engine/cuda/dynamic_smem.cuh"
#include "engine/cuda/kernel_clock.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/gqa_groups.hpp"
#include "kernels/common/paged_kv_device.cuh"
#include "kernels/decode_split/decode_split.hpp"
#include "kernels/decode_split/decode_split_grouped.cuh"

namespace attncheck::kernels {

namespace {

using namespace decode_split_detail;

constexpr int kWarp = 32;
// Phase-1 block: 4 warps. Each warp scores kTile / kWarps keys per tile;
// each thread owns kAccPerThread of the head_dim accumulator channels.
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarp;
constexpr int kAccPerThread = kMaxHeadDim / kThreads;
constexpr unsigned kFullMask = 0xffffffffu;

static_assert(kThreads == decode_split_grouped::kThreads,
              "both phase-1 kernels run kThreads-thread blocks (decode_split_cuda_splits' occupancy query)");
static_assert(kThreads % kWarp == 0, "phase-1 block must be whole warps (shuffle reductions use full masks)");
static_assert(kMaxHeadDim % kThreads == 0, "channels c = tid + k * kThreads must cover kMaxHeadDim exactly");
static_assert(kThreads >= kTile, "a tile's exps are formed with one thread per key");
static_assert(kTile % kWarps == 0, "every warp scores the same number of keys of a full tile");
static_assert(kMaxHeadDim % kWarp == 0 && kMaxHeadDim <= 1024,
              "merge block = head_dim rounded up to whole warps, at most kMaxHeadDim threads");

// Sequence holding packed query token t: the last b with q_start[b] <= t.
// (A q_len = 0 sequence shares its start with the next one, so the last
// such b is the sequence that actually holds t.)
__device__ __forceinline__ int seq_of_token(const int* __restrict__ q_start, int batch, int t) {
    int lo = 0, hi = batch - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (q_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

// Phase 1. grid = (rows, num_splits), block = kThreads. Row = packed
// (token, q head) index = token * n_q_heads + head (the LSE index; Q and O
// rows start at row * head_dim). With decode_rows_grouped, the rows of
// q_len = 1 sequences are the grouped kernel's and their blocks leave.
template <class T, Mutant M>
__global__ void __launch_bounds__(kThreads)
    split_partial_kernel(AttnShape s, const T* __restrict__ Q, const T* __restrict__ K, const T* __restrict__ V,
                         SeqArrays seqs, PagedTableView paged, int num_splits, float* __restrict__ part_ml,
                         float* __restrict__ part_acc, DeviceProbeView probe, int decode_rows_grouped) {
    __shared__ float q_s[kMaxHeadDim]; // the query row, as loaded (q_loaded)
    __shared__ float s_s[kTile];       // the tile's masked scores
    __shared__ float p_s[kTile];       // the tile's exps

    const int H = s.n_q_heads, d = s.head_dim;
    const long long row = blockIdx.x;
    const int split = blockIdx.y;
    const int t = static_cast<int>(row / H), h = static_cast<int>(row % H);
    const int b = seq_of_token(seqs.q_start, s.batch, t);
    const int i = t - seqs.q_start[b];
    const int q_len = seqs.q_lens[b], kv_len = seqs.kv_lens[b];
    if (decode_rows_grouped && q_len == 1) return; // the whole block, before any barrier
    const int kvh = kv_head_of<M>(s, h), vh = v_head_of<M>(s, kvh);
    const int pos = query_position<M>(q_len, kv_len, i);
    int lo, hi; // the row's visible range; lo is its first visible key (normalizer mutant)
    key_range<M>(s, kv_len, pos, lo, hi);
    int ka, kb; // keys this split processes; uniform over the block, so the barriers below are safe
    split_keys<M>(s, kv_len, num_splits, split, pos, ka, kb);
    const bool probed = probe.active && b == probe.seq && h == probe.head && i == probe.token;
    const float scale = score_scale<M>(s.scale);
    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;

    const T* __restrict__ qr = Q + row * d;
    for (int c = tid; c < d; c += kThreads) q_s[c] = q_loaded<M>(to_f(qr[c]), c);
    __syncthreads(); // q_s complete before any warp scores

    // Key j's K (or V) row of `head`: contiguous, or through the block table.
    auto kv_row = [&](const T* base, int head, int j) {
        return base + kv_row_offset<M>(paged, seqs.kv_start[b], b, j, head, s.n_kv_heads, d);
    };

    float m = -INFINITY, l = 0.0f;
    float acc[kAccPerThread];
#pragma unroll
    for (int k = 0; k < kAccPerThread; ++k) acc[k] = 0.0f;

    for (int j0 = ka; j0 < kb; j0 += kTile) {
        const int nt = min(kTile, kb - j0);
        // Scores: warp w takes keys w, w + kWarps, ...; its lanes split head_dim.
        for (int jj = warp; jj < nt; jj += kWarps) {
            const int j = j0 + jj;
            const T* __restrict__ kr = kv_row(K, kvh, j);
            float part = 0.0f;
            for (int c = lane; c < d; c += kWarp) part += q_s[c] * to_f(kr[c]);
#pragma unroll
            for (int off = kWarp / 2; off > 0; off /= 2) part += __shfl_xor_sync(kFullMask, part, off);
            if (lane == 0) {
                const float scaled = part * scale;
                const float masked = key_visible<M>(s, pos, j) ? scaled : masked_score<M>();
                s_s[jj] = masked;
                if (probed) {
                    probe.raw[j] = part;
                    probe.scaled[j] = scaled;
                    probe.masked[j] = masked;
                }
            }
        }
        __syncthreads(); // (A) the tile's scores are in s_s

        // Every thread moves its own copy of (m, l) identically (same inputs,
        // same order), so no broadcast is needed.
        float tile_max = -INFINITY;
        for (int jj = 0; jj < nt; ++jj) tile_max = ds_max(tile_max, s_s[jj]);
        const float m_new = ds_max(m, tile_max);
        const float alpha = online_alpha<M>(m, m_new);
        if (tid < nt) p_s[tid] = online_exp<M>(s_s[tid], m_new);
        __syncthreads(); // (B) the tile's exps are in p_s

        l = l * alpha;
        for (int jj = 0; jj < nt; ++jj)
            if (counts_in_normalizer<M>(j0 + jj, lo)) l = accumulate<M>(l, p_s[jj]);
#pragma unroll
        for (int k = 0; k < kAccPerThread; ++k) {
            const int c = tid + k * kThreads;
            if (c < d) {
                float a = acc[k];
                if constexpr (M != Mutant::online_no_rescale) a = a * alpha;
                for (int jj = 0; jj < nt; ++jj) a = accumulate<M>(a, p_s[jj] * to_f(kv_row(V, vh, j0 + jj)[c]));
                acc[k] = a;
            }
        }
        m = m_new;
        __syncthreads(); // (C) all reads of s_s / p_s done before the next tile overwrites them
    }

    if (tid == 0) {
        part_ml[ml_index(row, num_splits, split)] = m;
        part_ml[ml_index(row, num_splits, split) + 1] = l;
        if (probed && split < probe.max_splits) {
            probe.split_max[split] = m;
            probe.split_sum[split] = l;
        }
    }
    float* __restrict__ out = part_acc + acc_index(row, num_splits, split, d);
#pragma unroll
    for (int k = 0; k < kAccPerThread; ++k) {
        const int c = tid + k * kThreads;
        if (c < d) out[c] = acc[k];
    }
}

// Phase 2. grid = rows, block = head_dim rounded up to whole warps; thread c
// owns channel c. The max over the splits is a tree over the block; then
// the splits go by in chunks of kMergeChunk: their weights and row sums are
// computed once into shared memory, and every thread adds the chunk's
// splits to L and to its channel in split order, exactly as the CPU twin
// does (merge_sum_add, merge_num_add). The chunk's partial accumulators are read coalesced, a
// whole chunk's loads in flight at once. (A first version, every thread
// walking all splits with an expf each, took 30 us of 44 at 198 splits.)
constexpr int kMergeChunk = 32;
static_assert(kMergeChunk <= kWarp, "a chunk's weights are formed by the first warp");

template <class T, Mutant M>
__global__ void __launch_bounds__(kMaxHeadDim)
    split_merge_kernel(AttnShape s, SeqArrays seqs, int num_splits, const float* __restrict__ part_ml,
                       const float* __restrict__ part_acc, T* __restrict__ O, float* __restrict__ LSE,
                       DeviceProbeView probe) {
    __shared__ float w_s[kMergeChunk], l_s[kMergeChunk], max_s[kMaxHeadDim / kWarp];
    const int d = s.head_dim, S = num_splits;
    const long long row = blockIdx.x;
    const int c = threadIdx.x, lane = c % kWarp, warp = c / kWarp, warps = blockDim.x / kWarp;

    float m = -INFINITY;
    for (int split = c; split < S; split += blockDim.x) m = ds_max(m, part_ml[ml_index(row, S, split)]);
#pragma unroll
    for (int off = kWarp / 2; off > 0; off /= 2) m = ds_max(m, __shfl_xor_sync(kFullMask, m, off));
    if (lane == 0) max_s[warp] = m;
    __syncthreads();
    m = max_s[0];
    for (int w = 1; w < warps; ++w) m = ds_max(m, max_s[w]);

    float L = 0.0f, num = 0.0f;
    for (int c0 = 0; c0 < S; c0 += kMergeChunk) {
        const int n = min(kMergeChunk, S - c0);
        __syncthreads(); // the previous chunk's w_s, l_s are read by everyone
        if (c < n) {
            const float* ml = part_ml + ml_index(row, S, c0 + c);
            w_s[c] = merge_weight<M>(ml[0], m);
            l_s[c] = ml[1];
        }
        float a[kMergeChunk];
#pragma unroll
        for (int i = 0; i < kMergeChunk; ++i) a[i] = i < n && c < d ? part_acc[acc_index(row, S, c0 + i, d) + c] : 0.0f;
        __syncthreads(); // the chunk's weights and sums are in
#pragma unroll
        for (int i = 0; i < kMergeChunk; ++i)
            if (i < n) {
                L = merge_sum_add<M>(L, w_s[i], l_s[i]);
                num = merge_num_add<M>(num, w_s[i], l_s[i], a[i]);
            }
    }

    bool probed = false;
    if (probe.active) {
        const int t = static_cast<int>(row / s.n_q_heads), h = static_cast<int>(row % s.n_q_heads);
        const int b = seq_of_token(seqs.q_start, s.batch, t);
        probed = b == probe.seq && h == probe.head && t - seqs.q_start[b] == probe.token;
    }

    if (c < d) {
        const T stored = from_f<T>(merge_result<M>(num, L, m, S));
        O[row * d + c] = stored;
        if (probed) probe.o[c] = to_f(stored);
    }
    if (c == 0) {
        LSE[row] = m == -INFINITY ? -INFINITY : softmax_shift<M>(m) + ds_log(L);
        if (probed) {
            const int t = static_cast<int>(row / s.n_q_heads);
            const int kv_len = seqs.kv_lens[seq_of_token(seqs.q_start, s.batch, t)];
            const float max_exp = reconstruct_merged_probabilities<M>(probe.masked, kv_len, m, L, probe.exps, probe.p);
            probe.scalars[0] = m;
            probe.scalars[1] = max_exp;
            probe.scalars[2] = L;
        }
    }
}

// The grouped kernel serves the decode sequences (q_len = 1) of problems at
// the head dims it is built for, in fp16 and bf16; its mutant builds are
// fp16 at head_dim 64 (mutant kernels are fp16 only anyway). The portable
// phase 1 above serves every other row. Which kernel computes a sequence
// depends on that sequence alone, never on its neighbours, so a sequence's
// bits do not depend on the batch it sits in.
template <class T, Mutant M>
bool grouped_path_for(const AttentionProblem& p) {
    if constexpr (std::is_same_v<T, float>)
        return false;
    else
        return decode_split_grouped::grouped_head_dim(p.head_dim) && (M == Mutant::none || p.head_dim == 64);
}

// Calls f(kernel, smem bytes, D) with the grouped phase-1 kernel for the problem's head_dim.
template <class T, Mutant M, class F>
void with_grouped_kernel(int head_dim, F&& f) {
    namespace gp = decode_split_grouped;
    if constexpr (!std::is_same_v<T, float>) {
        if (head_dim == 64) return f(gp::grouped_partial_kernel<T, 64, M>, gp::smem_bytes<T, 64>());
        if constexpr (M == Mutant::none)
            if (head_dim == 128) return f(gp::grouped_partial_kernel<T, 128, M>, gp::smem_bytes<T, 128>());
    }
    throw std::logic_error("decode_split: no grouped kernel for this head_dim");
}

template <class T, Mutant M>
void launch_grouped(DeviceProblem<T>& dp, const AttentionProblem& p, const KvOnDevice<T>& kv, int S, const int* heads,
                    float* ml, float* acc, const DeviceProbeView& view) {
    with_grouped_kernel<T, M>(p.head_dim, [&](auto kernel, size_t smem) {
        if (smem > 48 * 1024) allow_max_dynamic_smem(kernel);
        const int parts = decode_split_grouped::parts_of(p.group());
        const dim3 grid(static_cast<unsigned>(S), static_cast<unsigned>(p.n_kv_heads * parts),
                        static_cast<unsigned>(p.batch()));
        const SeqArrays seqs{dp.q_start.get(), dp.kv_start.get(), dp.q_lens.get(), dp.kv_lens.get()};
        kernel<<<grid, decode_split_grouped::kThreads, smem>>>(dp.shape, dp.q.get(), kv.k, kv.v, seqs, kv.paged, heads,
                                                               S, ml, acc, view);
        CUDA_CHECK_LAUNCH();
    });
}

template <class T, Mutant M>
Observation launch(DeviceProblem<T>& dp, const AttentionProblem& p, const std::optional<ProbeRequest>& req) {
    const int S = p.num_splits, d = p.head_dim;
    const long long rows = p.total_q() * p.n_q_heads;
    DeviceBuffer<float> ml(static_cast<std::size_t>(rows * S * 2), "decode_split.partial_ml");
    DeviceBuffer<float> acc(static_cast<std::size_t>(rows * S * d), "decode_split.partial_acc");
    ml.poison();
    acc.poison();
    const bool grouped = grouped_path_for<T, M>(p);
    const bool decode_rows = std::count(p.q_lens.begin(), p.q_lens.end(), 1) > 0;
    const bool other_rows = std::any_of(p.q_lens.begin(), p.q_lens.end(), [](int q) { return q > 1; });
    const KvOnDevice<T> kv(dp, p);
    DeviceBuffer<int> heads;
    if (grouped) {
        heads = DeviceBuffer<int>(static_cast<std::size_t>(p.n_q_heads), "decode_split.group_heads");
        heads.upload(group_table<M>(dp.shape));
    }

    std::optional<DeviceProbe> probe;
    DeviceProbeView view; // inactive unless a probe is requested
    if (req) {
        probe.emplace(p, *req, 0, S); // no per-tile stats; one (max, sum) per split
        view = probe->view();
    }

    const SeqArrays seqs{dp.q_start.get(), dp.kv_start.get(), dp.q_lens.get(), dp.kv_lens.get()};
    if (rows > 0) { // a batch of q_len = 0 sequences has nothing to launch
        timed_kernels([&] {
            if (grouped && decode_rows) launch_grouped<T, M>(dp, p, kv, S, heads.get(), ml.get(), acc.get(), view);
            if (!grouped || other_rows) {
                const dim3 grid1(static_cast<unsigned>(rows), static_cast<unsigned>(S));
                split_partial_kernel<T, M><<<grid1, kThreads>>>(dp.shape, dp.q.get(), kv.k, kv.v, seqs, kv.paged, S,
                                                                ml.get(), acc.get(), view, grouped ? 1 : 0);
                CUDA_CHECK_LAUNCH();
            }
            const int merge_threads = (d + kWarp - 1) / kWarp * kWarp;
            split_merge_kernel<T, M><<<static_cast<unsigned>(rows), merge_threads>>>(
                dp.shape, seqs, S, ml.get(), acc.get(), dp.o.get(), dp.lse.get(), view);
            CUDA_CHECK_LAUNCH();
        });
    }
    std::vector<GuardRegion> scratch = kv.guards();
    scratch.insert(scratch.end(), {ml.guards(), acc.guards(), heads.guards()});
    Observation obs = dp.download(scratch); // synchronizes, checks every guard band
    if (probe) obs.probe = probe->download(0, S);
    return obs;
}

template <class T>
Observation dispatch(DeviceProblem<T>& dp, const AttentionProblem& p, Mutant m,
                     const std::optional<ProbeRequest>& req) {
    return dispatch_mutant<&cuda_builds<Family::decode_split, std::is_same_v<T, __half>>>(
        m, "decode_split", [&](auto mc) { return launch<T, decltype(mc)::value>(dp, p, req); });
}

} // namespace

int decode_split_cuda_splits(const AttentionProblem& p) {
    int device = 0, sms = 0, per_sm = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    long long blocks_per_split = p.total_q() * p.n_q_heads; // the portable path: one block per row
    auto occupancy = [&](auto kernel, size_t smem) {        // both phase-1 kernels run kThreads-thread blocks
        if (smem > 48 * 1024) allow_max_dynamic_smem(kernel);
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem));
    };
    auto grouped = [&](auto t) {
        using T = decltype(t);
        if (!grouped_path_for<T, Mutant::none>(p)) return false;
        with_grouped_kernel<T, Mutant::none>(p.head_dim, occupancy);
        blocks_per_split = static_cast<long long>(p.batch()) * p.n_kv_heads * decode_split_grouped::parts_of(p.group());
        return true;
    };
    const bool g = p.dtype == DType::f16 ? grouped(__half{}) : p.dtype == DType::bf16 && grouped(__nv_bfloat16{});
    if (!g) occupancy(split_partial_kernel<float, Mutant::none>, 0);
    const int max_kv = p.kv_lens.empty() ? 0 : *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
    return heuristic_splits(blocks_per_split, max_kv, static_cast<long long>(sms) * per_sm);
}

Observation decode_split_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    const std::string why =
        unsupported_reason(p.head_dim, p.dtype, p.total_q() * p.n_q_heads, p.num_splits, Backend::cuda, m);
    if (!why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "decode_split");
    return with_device_problem(p, [&](auto& dp) { return dispatch(dp, p, m, probe); });
}

} // namespace attncheck::kernels
