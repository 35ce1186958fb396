// Kernel family standard_path, CUDA: attention as eager frameworks run it,
// in three stages per sequence of a ragged batch (the host loops over the
// sequences; q_len = 0 is skipped, kv_len = 0 gives O = 0 and LSE = -inf):
//   1. S = Q.K^T, one cuBLAS GEMM per q head, batched (cublasGemmBatchedEx,
//      pointer arrays; the K pointer is chosen through kv_head_of, so any
//      GQA ratio works), fp16/bf16/fp32 inputs, fp32 S, CUBLAS_COMPUTE_32F
//      (CUBLAS_COMPUTE_32F_PEDANTIC for fp32 inputs: no TF32, no emulation).
//      Leading dimensions come straight from the packed layout (Q row stride
//      n_q_heads * head_dim, K/V row stride n_kv_heads * head_dim).
//   2. softmax_rows: one 128-thread block per (query row, q head): scale,
//      mask (bottom-right causal, window), masked fill, row max, expf, row
//      sum, P = e / l rounded to T (fp32 for fp32 inputs), LSE = max + log l.
//      A row whose max is -inf has no visible key: P = 0 and LSE = -inf.
//   3. O = P.V, one GEMM per q head (V pointer through v_head_of), output in
//      T, fp32 compute, reduced-precision split-K reductions disallowed.
//
// Batch invariance (Target::promises_batch_invariance): a sequence gives the
// same bits wherever it sits in the batch. The GEMM configuration depends on
// where the operands start: gemm_batch takes cublasGemmBatchedEx only when
// every pointer is 16-byte aligned, and cuBLAS itself picks kernels (vector
// width, tile shape, split-K) by pointer alignment up to 256 bytes
// (cuBLASLt's MIN_ALIGNMENT_*_BYTES). On an H200 a one-head fp32 sequence
// (q_len 17, head_dim 7 / 33 / 65) went batched at position 0 and per head
// after a neighbour that moved it to an odd element offset, and its last
// bits changed. Rule: every GEMM of a sequence addresses Q, K, V and O
// through a 256-byte-aligned base for that sequence's block. Device buffers
// start 256-byte aligned (cudaMalloc, plus 2048 guard bytes), so a block
// whose offset is a multiple of 256 bytes is used in place; any other is
// copied whole into aligned scratch (O computed there and copied back),
// with the same leading dimensions. Every per-head pointer then has the
// alignment it has at batch position 0, whatever the neighbours, and both
// choices above depend on the sequence's shape only (the S and P scratch
// and the chunk plan already did). Aligned blocks (batch position 0 among
// them) cost nothing; the others one device copy of each operand.
//
// Limits: head_dim <= 256. S and P for a sequence are held at most
// 2^26 elements at a time (chunks of query rows / heads, see
// standard_path.hpp). P.V is a dense GEMM over every key, so a
// non-finite V at a masked key would reach rows that do not see it
// (0 * inf = NaN): causal cases with a non-finite V are rejected.
// cublasGemmBatchedEx cannot see where the pointers in its device arrays
// point; with fp16/bf16 it wants them 16-byte aligned, so a chunk whose
// pointers are not (head_dim * sizeof(T) not a multiple of 16) runs one
// cublasGemmEx per head instead (same types, same compute type). A
// misaligned sequence needs scratch for its Q, K, V and O blocks (the
// largest such block of the batch) besides S and P.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/check.cuh"
#include "engine/cuda/cublas_handle.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "engine/cuda/kernel_clock.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/device_convert.cuh"
#include "kernels/common/device_problem.cuh"
#include "kernels/standard_path/standard_path.hpp"
#include "kernels/standard_path/standard_path_gemm.cuh"

namespace attncheck::kernels {

namespace {

using namespace standard_path_detail;

struct MaxOp {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
template <Mutant M>
struct SumOp {
    __device__ float operator()(float a, float b) const { return accumulate<M>(a, b); }
};

// Block-wide reduction; every thread gets the result. Order (replayed by the
// CPU twin): a butterfly over xor offsets 16..1 inside each warp, then the
// warp results 0, 1, 2, 3 combined in order. `red` is reused across calls,
// hence the barrier before it is written.
template <class Op>
__device__ float block_reduce(float v, Op op, float* red) {
    for (int off = kWarpSize / 2; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();
    if ((threadIdx.x & (kWarpSize - 1)) == 0) red[threadIdx.x / kWarpSize] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < kSoftmaxWarps; ++w) r = op(r, red[w]);
    return r;
}

// Stage 2. Block (blockIdx.x, blockIdx.y) = (row r0 + x, head h0 + y) of
// sequence `seq`; its scores are S[y * stride + x * kv_len + j], its
// probabilities go to the same offsets of P. The probed row also records
// every stage (raw, scaled, masked, exps, p and the three scalars).
template <class T, Mutant M>
__global__ void __launch_bounds__(kSoftmaxThreads)
    softmax_rows(const float* __restrict__ S, T* __restrict__ P, float* __restrict__ lse, AttnShape sh, int seq,
                 int q_len, int kv_len, long long q_start, int r0, int h0, long long stride, DeviceProbeView probe) {
    __shared__ float red[kSoftmaxWarps];
    __shared__ int first_visible_sh;
    const int i = r0 + static_cast<int>(blockIdx.x);
    const int h = h0 + static_cast<int>(blockIdx.y);
    const long long off = static_cast<long long>(blockIdx.y) * stride + static_cast<long long>(blockIdx.x) * kv_len;
    const float* srow = S + off;
    T* prow = P + off;
    const bool probed = probe.active && probe.seq == seq && probe.head == h && probe.token == i;
    const int pos = query_position<M>(q_len, kv_len, i);
    const float sc = score_scale<M>(sh.scale);
    // __fmul_rn: the scaled score is rounded once, as the CPU twin does; an
    // FMA contraction with the later "- shift" would not be.
    auto masked_at = [&](int j, float& s) {
        s = __fmul_rn(srow[j], sc);
        return key_visible<M>(sh, pos, j) ? s : masked_score<M>();
    };

    int first_visible = 0; // only the normalizer_drops_key mutant looks at it
    if constexpr (M == Mutant::normalizer_drops_key) {
        if (threadIdx.x == 0) {
            int lo, hi;
            key_range<M>(sh, kv_len, pos, lo, hi);
            first_visible_sh = first_visible_key<M>(sh, pos, lo, kv_len);
        }
        __syncthreads();
        first_visible = first_visible_sh;
    }

    // Row max over the masked row.
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < kv_len; j += kSoftmaxThreads) {
        float s;
        const float x = masked_at(j, s);
        mx = fmaxf(mx, x);
        if (probed) {
            probe.raw[j] = srow[j];
            probe.scaled[j] = s;
            probe.masked[j] = x;
        }
    }
    mx = block_reduce(mx, MaxOp{}, red);
    const long long li = (q_start + i) * sh.n_q_heads + h;

    // Emptiness is decided by the max being -inf (with the finite-sentinel
    // mutant a fully masked row is not empty: it averages V).
    if (mx == -INFINITY) { // block-uniform: no barrier follows
        for (int j = threadIdx.x; j < kv_len; j += kSoftmaxThreads) {
            prow[j] = from_f<T>(0.0f);
            if (probed) {
                probe.exps[j] = 0.0f;
                probe.p[j] = 0.0f;
            }
        }
        if (threadIdx.x == 0) {
            lse[li] = -INFINITY;
            if (probed) {
                probe.scalars[0] = -INFINITY;
                probe.scalars[1] = 0.0f;
                probe.scalars[2] = 0.0f;
            }
        }
        return;
    }

    const float shift = softmax_shift<M>(mx);
    float sum = 0.0f, emax = 0.0f;
    for (int j = threadIdx.x; j < kv_len; j += kSoftmaxThreads) {
        float s;
        const float e = expf(masked_at(j, s) - shift);
        if (counts_in_normalizer<M>(j, first_visible)) sum = accumulate<M>(sum, e);
        if (probed) {
            probe.exps[j] = e;
            emax = fmaxf(emax, e);
        }
    }
    sum = block_reduce(sum, SumOp<M>{}, red);
    if (probed) emax = block_reduce(emax, MaxOp{}, red); // `probed` is block-uniform

    // e is recomputed rather than kept: the same expf of the same argument.
    for (int j = threadIdx.x; j < kv_len; j += kSoftmaxThreads) {
        float s;
        const float e = expf(masked_at(j, s) - shift);
        const T pj = from_f<T>(e / sum); // IEEE division (no fast-math in this build)
        prow[j] = pj;
        if (probed) probe.p[j] = to_f(pj);
    }
    if (threadIdx.x == 0) {
        lse[li] = shift + logf(sum);
        if (probed) {
            probe.scalars[0] = mx;
            probe.scalars[1] = emax;
            probe.scalars[2] = sum;
        }
    }
}

// partial_q_load on CUDA: cuBLAS reads Q itself, so the mutant is a copy of
// Q in which q_loaded<M> has zeroed every channel but the first.
template <class T, Mutant M>
__global__ void load_q_copy(const T* __restrict__ q, T* __restrict__ out, long long n, int head_dim) {
    for (long long x = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; x < n;
         x += static_cast<long long>(gridDim.x) * blockDim.x)
        out[x] = from_f<T>(q_loaded<M>(to_f(q[x]), static_cast<int>(x % head_dim)));
}

__global__ void fill_f32(float* __restrict__ p, long long n, float value) {
    for (long long x = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; x < n;
         x += static_cast<long long>(gridDim.x) * blockDim.x)
        p[x] = value;
}

int grid_for(long long n, int threads) {
    const long long g = (n + threads - 1) / threads;
    return static_cast<int>(std::min<long long>(std::max<long long>(g, 1), 4096));
}

// ---- the three stages over a ragged batch

template <class T, Mutant M>
Observation run_cuda(DeviceProblem<T>& dp, const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    constexpr Mutant MS = softmax_mutant(M);
    const AttnShape sh = dp.shape;
    const int Hq = p.n_q_heads, Hkv = p.n_kv_heads, d = p.head_dim;
    cublasHandle_t handle = thread_cublas_handle();

    // Scratch for the largest chunk of any sequence.
    long long scratch = 1;
    int max_heads = 1;
    for (int b = 0; b < p.batch(); ++b) {
        if (p.q_lens[b] == 0 || p.kv_lens[b] == 0) continue;
        const SeqPlan pl = plan_sequence(p.q_lens[b], p.kv_lens[b], Hq);
        scratch = std::max(scratch, pl.elems());
        max_heads = std::max(max_heads, pl.heads);
    }
    DeviceBuffer<float> S(static_cast<std::size_t>(scratch), "standard_path.S");
    DeviceBuffer<T> P(static_cast<std::size_t>(scratch), "standard_path.P");
    DeviceBuffer<void*> ptrs(3 * static_cast<std::size_t>((max_heads + 1) / 2 * 2), "standard_path.gemm_pointers");
    S.poison();
    P.poison();
    ptrs.poison();

    const T* qsrc = dp.q.get();
    DeviceBuffer<T> qcopy;
    if constexpr (M == Mutant::partial_q_load) {
        qcopy = DeviceBuffer<T>(dp.q.size(), "standard_path.Q_partial");
        qcopy.poison();
        const long long n = static_cast<long long>(dp.q.size());
        if (n > 0) {
            load_q_copy<T, M><<<grid_for(n, 256), 256>>>(dp.q.get(), qcopy.get(), n, d);
            CUDA_CHECK_LAUNCH();
        }
        qsrc = qcopy.get();
    }

    std::optional<DeviceProbe> dprobe;
    DeviceProbeView pv; // inactive
    if (probe) {
        dprobe.emplace(p, *probe, 0, 0);
        pv = dprobe->view();
    }

    const long long ldq = static_cast<long long>(Hq) * d, ldkv = static_cast<long long>(Hkv) * d;
    // Each sequence's blocks at an aligned base (the invariance rule above).
    AlignedBlocks<T> qa("standard_path.Q_aligned"), ka("standard_path.K_aligned"), va("standard_path.V_aligned"),
        oa("standard_path.O_aligned");
    for (int b = 0; b < p.batch(); ++b) {
        if (p.q_lens[b] == 0 || p.kv_lens[b] == 0) continue; // no GEMM
        const long long qn = p.q_lens[b] * ldq, kvn = p.kv_lens[b] * ldkv;
        qa.need(qsrc + p.q_start[b] * ldq, qn);
        ka.need(dp.k.get() + p.kv_start[b] * ldkv, kvn);
        va.need(dp.v.get() + p.kv_start[b] * ldkv, kvn);
        oa.need(dp.o.get() + p.q_start[b] * ldq, qn);
    }
    for (AlignedBlocks<T>* x : {&qa, &ka, &va, &oa}) x->allocate();

    const float one = 1.0f, zero = 0.0f;
    const __half one_h = __float2half(1.0f), zero_h = __float2half(0.0f);
    const cudaDataType_t tt = cuda_type<T>();
    std::vector<const void*> a, bptr;
    std::vector<void*> c;

    timed_kernels([&] {
        for (int b = 0; b < p.batch(); ++b) {
            const int q_len = p.q_lens[b], kv_len = p.kv_lens[b];
            if (q_len == 0) continue;
            const long long q0 = p.q_start[b], k0 = p.kv_start[b];
            if (kv_len == 0) { // empty cache: O = 0 (all-zero bytes in every T), LSE = -inf
                CUDA_CHECK(cudaMemsetAsync(dp.o.get() + q0 * ldq, 0, sizeof(T) * static_cast<std::size_t>(q_len * ldq),
                                           cudaStreamPerThread));
                const long long n = static_cast<long long>(q_len) * Hq;
                fill_f32<<<grid_for(n, 256), 256>>>(dp.lse.get() + q0 * Hq, n, -INFINITY);
                CUDA_CHECK_LAUNCH();
                continue;
            }
            const long long qn = q_len * ldq, kvn = kv_len * ldkv;
            const T* qb = qa.in(qsrc + q0 * ldq, qn);
            const T* kb = ka.in(dp.k.get() + k0 * ldkv, kvn);
            const T* vb = va.in(dp.v.get() + k0 * ldkv, kvn);
            T* ob = oa.out(dp.o.get() + q0 * ldq, qn);
            const SeqPlan pl = plan_sequence(q_len, kv_len, Hq);
            for (int h0 = 0; h0 < Hq; h0 += pl.heads) {
                const int hc = std::min(pl.heads, Hq - h0);
                for (int r0 = 0; r0 < q_len; r0 += pl.rows) {
                    const int rc = std::min(pl.rows, q_len - r0);
                    // Re-poison the part of S and P this chunk uses: nothing of
                    // an earlier chunk can stand in for a missing write.
                    const std::size_t used = static_cast<std::size_t>(hc) * static_cast<std::size_t>(pl.stride);
                    CUDA_CHECK(cudaMemsetAsync(S.get(), kPoisonByte, used * sizeof(float), cudaStreamPerThread));
                    CUDA_CHECK(cudaMemsetAsync(P.get(), kPoisonByte, used * sizeof(T), cudaStreamPerThread));

                    // 1. S_h (column-major kv_len x rc, ld kv_len) = K_h^T (d x kv_len, ld Hkv*d)^T . Q_h (d x rc, ld
                    // Hq*d)
                    a.assign(hc, nullptr);
                    bptr.assign(hc, nullptr);
                    c.assign(hc, nullptr);
                    for (int hl = 0; hl < hc; ++hl) {
                        const int h = h0 + hl;
                        const int kvh = kv_head_of<M>(sh, h);
                        a[hl] = kb + static_cast<long long>(kvh) * d;
                        bptr[hl] = qb + (static_cast<long long>(r0) * Hq + h) * d;
                        c[hl] = S.get() + hl * pl.stride;
                    }
                    gemm_batch(handle,
                               GemmCall{CUBLAS_OP_T, CUBLAS_OP_N, kv_len, rc, d, &one, &zero, tt, tt, CUDA_R_32F,
                                        static_cast<int>(ldkv), static_cast<int>(ldq), kv_len, compute_32f<T>()},
                               a, bptr, c, ptrs);

                    // 2. softmax: S -> P (in T), LSE
                    softmax_rows<T, MS><<<dim3(rc, hc), kSoftmaxThreads>>>(S.get(), P.get(), dp.lse.get(), sh, b, q_len,
                                                                           kv_len, q0, r0, h0, pl.stride, pv);
                    CUDA_CHECK_LAUNCH();

                    // 3. O_h (d x rc, ld Hq*d) = V_h (d x kv_len, ld Hkv*d) . P_h (kv_len x rc, ld kv_len)
                    for (int hl = 0; hl < hc; ++hl) {
                        const int h = h0 + hl;
                        const int vh = v_head_of<M>(sh, kv_head_of<M>(sh, h));
                        a[hl] = vb + static_cast<long long>(vh) * d;
                        bptr[hl] = P.get() + hl * pl.stride;
                        c[hl] = ob + (static_cast<long long>(r0) * Hq + h) * d;
                    }
                    if constexpr (M == Mutant::fp16_accumulation && std::is_same_v<T, __half>) {
                        // The mutant's P.V accumulates in fp16 (CUBLAS_COMPUTE_16F,
                        // fp16 scalars); the row sum in softmax_rows does too.
                        gemm_batch(handle,
                                   GemmCall{CUBLAS_OP_N, CUBLAS_OP_N, d, rc, kv_len, &one_h, &zero_h, tt, tt, tt,
                                            static_cast<int>(ldkv), kv_len, static_cast<int>(ldq), CUBLAS_COMPUTE_16F},
                                   a, bptr, c, ptrs);
                    } else {
                        gemm_batch(handle,
                                   GemmCall{CUBLAS_OP_N, CUBLAS_OP_N, d, rc, kv_len, &one, &zero, tt, tt, tt,
                                            static_cast<int>(ldkv), kv_len, static_cast<int>(ldq), compute_32f<T>()},
                                   a, bptr, c, ptrs);
                    }
                }
            }
            oa.finish(dp.o.get() + q0 * ldq, qn);
        }
    });

    // Synchronizes and checks every guard band, scratch included (an
    // unallocated scratch buffer has none).
    Observation obs = dp.download(
        {S.guards(), P.guards(), ptrs.guards(), qa.guards(), ka.guards(), va.guards(), oa.guards(), qcopy.guards()});
    if (dprobe) {
        ProbeTrace t = dprobe->download(0, 0);
        if (p.kv_lens[probe->seq] == 0) { // no softmax ran for this row
            t.row_max = -INFINITY;
            t.max_exp = 0.0f;
            t.row_sum = 0.0f;
        }
        // O is formed by cuBLAS: the probed row is read back from the output.
        const long long oi = p.o_index(probe->seq, probe->token, probe->head);
        t.o.assign(obs.o.begin() + oi, obs.o.begin() + oi + d);
        obs.probe = std::move(t);
    }
    return obs;
}

template <class T>
Observation dispatch(DeviceProblem<T>& dp, const AttentionProblem& p, Mutant m,
                     const std::optional<ProbeRequest>& probe) {
    return dispatch_mutant<&cuda_builds<Family::standard_path, std::is_same_v<T, __half>>>(
        m, "standard_path", [&](auto mc) { return run_cuda<T, decltype(mc)::value>(dp, p, probe); });
}

bool problem_v_nonfinite(const AttentionProblem& p) {
    for (float x : p.v)
        if (!std::isfinite(x)) return true;
    return false;
}

} // namespace

Observation standard_path_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    const std::string why =
        unsupported_reason(p.head_dim, p.dtype, p.causal, p.causal && problem_v_nonfinite(p), Backend::cuda, m);
    if (!why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "standard_path");
    return with_device_problem(p, [&](auto& dp) { return dispatch(dp, p, m, probe); });
}

} // namespace attncheck::kernels
