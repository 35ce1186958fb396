// The fp64 oracle on the GPU: one block per query row (a sequence's query
// token and q head), in four passes over the row's keys, every product and
// sum in fp64 from the exact (dtype-rounded) inputs:
//   1. scores s_j = scale * q.k_j (the dot product in the host oracle's
//      order, with explicitly rounded multiplies and adds so that nvcc's FMA
//      contraction cannot make it differ), their conditioning, the row max m,
//      each score's error bound, finiteness of the row's inputs;
//   2. max_j |s_j - m|, then the row's scalar terms (error_model_terms.hpp);
//   3. l = sum_j exp(s_j - m), then p_j = exp(s_j - m) / l in place of s_j;
//   4. one thread per channel: O_c = sum_j p_j v_jc (the oracle), and
//      W_c = sum_j p_j |v_jc|, U_c (underflow) for the bound on O_c.
// Its results differ from the host oracle's by the order of the block-wide
// sums and by exp/log's last ulp: ~1e-16 relative, checked at 1e-12.
//
// Limits: a row's scores live in shared memory, so kv_len is at most
// kGpuOracleMaxKeys (the caller falls back to the host); the dot products
// are one thread per key, uncoalesced but cached: the kernel is a judge,
// not a contender.
#include <cuda_runtime.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "engine/cuda/check.cuh"
#include "engine/cuda/device_buffer.cuh"
#include "engine/cuda/dynamic_smem.cuh"
#include "engine/timing/phase_timer.hpp"
#include "oracle/error_model_terms.hpp"
#include "oracle/gpu/oracle_gpu.hpp"

namespace attncheck {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

struct RowInfo {
    double delta, rho, lse, w_max, logit_reach;
    int masked, meaningful, finite, unused;
};

struct Params {
    const float *q, *k, *v;
    const long long *q_start, *kv_start; // per sequence
    const int *q_lens, *kv_lens;
    const int* token_seq; // [total_q]: the sequence of each packed query token
    int hq, hkv, d, group, causal, window;
    double scale, g_dot;
    BoundConstants kc;
    double *ref_o, *ref_lse, *o_bound;
    RowInfo* info;
};

struct MaxOp {
    __device__ double operator()(double a, double b) const { return fmax(a, b); } // NaN-ignoring, as the host's max
};
struct SumOp {
    __device__ double operator()(double a, double b) const { return a + b; }
};

// Every thread gets the result. `red` is reused: the first barrier keeps a
// fast warp from overwriting it while a slow one still reads the last result.
template <class Op>
__device__ double block_reduce(double x, Op op, double* red) {
    for (int o = 16; o > 0; o >>= 1) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = x;
    __syncthreads();
    x = red[0];
    for (int w = 1; w < kWarps; ++w) x = op(x, red[w]);
    return x;
}

__global__ void __launch_bounds__(kThreads) oracle_kernel(Params P) {
    extern __shared__ double s[]; // [kv_len]: scores, then probabilities
    __shared__ double red[kWarps];
    const long long row = blockIdx.x; // LSE order: token * hq + head
    const long long tok = row / P.hq;
    const int h = static_cast<int>(row % P.hq);
    const int b = P.token_seq[tok];
    const int t = static_cast<int>(tok - P.q_start[b]);
    const int n_all = P.kv_lens[b], d = P.d, kvh = h / P.group;
    const long long pos = static_cast<long long>(n_all) - P.q_lens[b] + t; // bottom-right causal alignment
    auto visible = [&](int j) {
        if (!P.causal) return true;
        if (j > pos) return false;
        return !(P.window > 0 && j <= pos - P.window);
    };
    auto kv_row = [&](const float* base, int j) { return base + ((P.kv_start[b] + j) * P.hkv + kvh) * d; };
    const float* q = P.q + row * d;

    // 1. Scores.
    double m = -INFINITY, e_max = 0, n = 0, finite = 1, meaningful = 1;
    for (int c = threadIdx.x; c < d; c += kThreads)
        if (!isfinite(q[c])) finite = 0;
    double reach = 0;
    for (int j = threadIdx.x; j < n_all; j += kThreads) {
        if (!visible(j)) {
            const float* kr = kv_row(P.k, j);
            double absdot = 0;
            for (int c = 0; c < d; ++c)
                absdot = __dadd_rn(absdot, fabs(__dmul_rn(static_cast<double>(q[c]), static_cast<double>(kr[c]))));
            reach = fmax(reach, __dmul_rn(absdot, P.kc.scale_abs));
            continue;
        }
        const float *kr = kv_row(P.k, j), *vr = kv_row(P.v, j);
        double dot = 0, absdot = 0;
        for (int c = 0; c < d; ++c) {
            const double prod = __dmul_rn(static_cast<double>(q[c]), static_cast<double>(kr[c]));
            dot = __dadd_rn(dot, prod);
            absdot = __dadd_rn(absdot, fabs(prod));
            if (!isfinite(kr[c]) || !isfinite(vr[c])) finite = 0;
        }
        const double sj = __dmul_rn(dot, P.scale);
        s[j] = sj;
        n += 1;
        m = fmax(m, sj);
        bool ok = true;
        const double aj = __dmul_rn(absdot, P.kc.scale_abs);
        reach = fmax(reach, aj);
        e_max = fmax(e_max, score_error(P.kc, P.g_dot, sj, aj, &ok));
        if (!ok) meaningful = 0;
    }
    n = block_reduce(n, SumOp{}, red);
    m = block_reduce(m, MaxOp{}, red);
    e_max = block_reduce(e_max, MaxOp{}, red);
    finite = -block_reduce(-finite, MaxOp{}, red);
    meaningful = -block_reduce(-meaningful, MaxOp{}, red);
    reach = block_reduce(reach, MaxOp{}, red);
    const int nv = static_cast<int>(n);
    double* o_ref = P.ref_o + row * d;
    double* o_bnd = P.o_bound + row * d;
    if (nv == 0) { // fully masked: O = 0, LSE = -inf by convention
        for (int c = threadIdx.x; c < d; c += kThreads) o_ref[c] = o_bnd[c] = 0.0;
        if (threadIdx.x == 0) {
            P.ref_lse[row] = -INFINITY;
            P.info[row] = RowInfo{0, 0, 0, 0, reach, 1, 1, finite != 0, 0};
        }
        return;
    }

    // 2. The row's terms.
    double arg_max = 0;
    for (int j = threadIdx.x; j < n_all; j += kThreads)
        if (visible(j)) arg_max = fmax(arg_max, fabs(s[j] - m));
    arg_max = block_reduce(arg_max, MaxOp{}, red);
    const RowTerms rt = row_terms(P.kc, nv, e_max, arg_max);
    if (!rt.meaningful) meaningful = 0;

    // 3. Row sum, probabilities (each thread rewrites only its own keys).
    double l = 0;
    for (int j = threadIdx.x; j < n_all; j += kThreads)
        if (visible(j)) l += exp(s[j] - m);
    l = block_reduce(l, SumOp{}, red);
    for (int j = threadIdx.x; j < n_all; j += kThreads) s[j] = visible(j) ? exp(s[j] - m) / l : 0.0;
    __syncthreads();

    // 4. O and its bound, one channel per thread.
    double w_max = 0;
    for (int c = threadIdx.x; c < d; c += kThreads) {
        double W = 0, U = 0, O = 0;
        for (int j = 0; j < n_all; ++j) {
            if (!visible(j)) continue;
            const double vv = kv_row(P.v, j)[c], av = fabs(vv), p = s[j];
            O = __dadd_rn(O, __dmul_rn(p, vv));
            W = __dadd_rn(W, __dmul_rn(p, av));
            U = __dadd_rn(U, __dmul_rn(underflow_error(P.kc, p, l, rt.rho), av));
        }
        o_ref[c] = O;
        o_bnd[c] = finite != 0 ? o_bound(P.kc, rt, nv, d, W, U, O) : 0.0;
        w_max = fmax(w_max, W);
    }
    w_max = block_reduce(w_max, MaxOp{}, red);
    if (threadIdx.x == 0) {
        P.ref_lse[row] = m + log(l);
        // A row with non-finite inputs has no bound (as bound_row).
        P.info[row] = finite != 0
                          ? RowInfo{rt.delta, rt.rho, lse_bound(P.kc, rt, m, l), w_max, reach, 0, meaningful != 0, 1, 0}
                          : RowInfo{0, 0, 0, 0, reach, 0, 0, 0, 0};
    }
}

} // namespace

OracleRun gpu_oracle(const AttentionProblem& p, const PrecisionProfile& prof) {
    const long long rows = p.total_q() * p.n_q_heads;
    const int max_kv = p.kv_lens.empty() ? 0 : *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
    if (max_kv > kGpuOracleMaxKeys)
        throw std::invalid_argument("gpu oracle: kv_len " + std::to_string(max_kv) + " above its limit of " +
                                    std::to_string(kGpuOracleMaxKeys) + " keys");
    OracleRun out;
    out.ref.o.assign(p.q.size(), 0.0);
    out.ref.lse.assign(static_cast<size_t>(rows), 0.0);
    out.bounds.o.assign(p.q.size(), 0.0);
    out.bounds.rows.resize(static_cast<size_t>(rows));
    if (rows == 0) return out;

    std::vector<int> token_seq(static_cast<size_t>(p.total_q()));
    for (int b = 0; b < p.batch(); ++b)
        for (int t = 0; t < p.q_lens[b]; ++t) token_seq[static_cast<size_t>(p.q_start[b] + t)] = b;
    // One arena: inputs, outputs (poisoned) and every band in one upload.
    std::optional<ScopedPhase> staging(Phase::transfer);
    DeviceArena arena;
    const size_t nd = p.q.size(), nr = static_cast<size_t>(rows), nb = p.q_lens.size();
    const size_t r_q = arena.reserve<float>(nd), r_k = arena.reserve<float>(p.k.size()),
                 r_v = arena.reserve<float>(p.v.size()), r_qs = arena.reserve<long long>(nb),
                 r_ks = arena.reserve<long long>(nb), r_ql = arena.reserve<int>(nb), r_kl = arena.reserve<int>(nb),
                 r_ts = arena.reserve<int>(token_seq.size());
    // Outputs last and adjacent: one copy back.
    const size_t r_o = arena.reserve<double>(nd), r_ob = arena.reserve<double>(nd), r_info = arena.reserve<RowInfo>(nr),
                 r_lse = arena.reserve<double>(nr);
    arena.begin_image();
    auto put = [&](size_t region, const auto& src) {
        using E = typename std::decay_t<decltype(src)>::value_type;
        std::copy(src.begin(), src.end(), arena.image_payload<E>(region));
    };
    put(r_q, p.q);
    put(r_k, p.k);
    put(r_v, p.v);
    put(r_qs, p.q_start);
    put(r_ks, p.kv_start);
    put(r_ql, p.q_lens);
    put(r_kl, p.kv_lens);
    put(r_ts, token_seq);
    arena.poison_image(r_o, nd * sizeof(double));
    arena.poison_image(r_ob, nd * sizeof(double));
    arena.poison_image(r_info, nr * sizeof(RowInfo));
    arena.poison_image(r_lse, nr * sizeof(double));
    arena.upload();
    auto q = arena.view<float>(r_q, nd, "oracle.Q"), k = arena.view<float>(r_k, p.k.size(), "oracle.K"),
         v = arena.view<float>(r_v, p.v.size(), "oracle.V");
    auto qs = arena.view<long long>(r_qs, nb, "oracle.q_start"),
         ks = arena.view<long long>(r_ks, nb, "oracle.kv_start");
    auto ql = arena.view<int>(r_ql, nb, "oracle.q_lens"), kl = arena.view<int>(r_kl, nb, "oracle.kv_lens"),
         ts = arena.view<int>(r_ts, token_seq.size(), "oracle.token_seq");
    auto ro = arena.view<double>(r_o, nd, "oracle.O"), ob = arena.view<double>(r_ob, nd, "oracle.O_bound"),
         rl = arena.view<double>(r_lse, nr, "oracle.LSE");
    auto info = arena.view<RowInfo>(r_info, nr, "oracle.row_info");

    staging.reset();
    const BoundConstants kc = bound_constants(p, prof);
    // Aggregate order: the fields of Params, top to bottom.
    const Params P{q.get(),     k.get(),      v.get(),    qs.get(),
                   ks.get(),    ql.get(),     kl.get(),   ts.get(),
                   p.n_q_heads, p.n_kv_heads, p.head_dim, p.group(),
                   p.causal,    p.window,     p.scale,    gamma_n(p.head_dim + 2, kc.u_acc),
                   kc,          ro.get(),     rl.get(),   ob.get(),
                   info.get()};
    const size_t smem = static_cast<size_t>(std::max(max_kv, 1)) * sizeof(double);
    if (smem > 48 * 1024) allow_max_dynamic_smem(oracle_kernel);
    oracle_kernel<<<static_cast<unsigned>(rows), kThreads, smem>>>(P);
    CUDA_CHECK_LAUNCH();

    // One copy of the output regions to pinned staging behind the kernel;
    // the guard check's one synchronization completes it.
    const size_t span = r_lse + guarded_region_bytes(rl.bytes()) - r_o;
    unsigned char* stage = PinnedStage::take(span);
    CUDA_CHECK(cudaMemcpyAsync(stage, ro.get() - kGuardBytes / sizeof(double), span, cudaMemcpyDeviceToHost,
                               cudaStreamPerThread));
    auto at = [&](size_t region) { return stage + (region - r_o) + kGuardBytes; };
    auto* h_o = reinterpret_cast<const double*>(at(r_o));
    auto* h_ob = reinterpret_cast<const double*>(at(r_ob));
    auto* h_info = reinterpret_cast<const RowInfo*>(at(r_info));
    auto* h_lse = reinterpret_cast<const double*>(at(r_lse));
    check_guard_bands({q.guards(), k.guards(), v.guards(), qs.guards(), ks.guards(), ql.guards(), kl.guards(),
                       ts.guards(), ro.guards(), rl.guards(), ob.guards(), info.guards()});
    staging.emplace(Phase::transfer);
    std::copy(h_o, h_o + nd, out.ref.o.begin());
    std::copy(h_ob, h_ob + nd, out.bounds.o.begin());
    std::copy(h_lse, h_lse + nr, out.ref.lse.begin());
    for (size_t r = 0; r < nr; ++r) {
        const RowInfo& x = h_info[r];
        out.bounds.rows[r] = {x.masked != 0, x.meaningful != 0, x.finite != 0, x.delta, x.rho,
                              x.lse,         x.w_max,           x.logit_reach};
    }
    return out;
}

} // namespace attncheck
