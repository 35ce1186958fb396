// Elementwise and per-row kernels of the CUDA decoder.
//
// Algorithm and limits: every kernel reads T values (fp32, fp16 or bf16
// bits), computes in fp32 with IEEE operations in the same order as the CPU
// engine (model/model_cpu.cpp) -- no fast-math intrinsics, no FMA
// contraction where the order matters (explicit __fmul_rn/__fadd_rn) -- and
// rounds once to T on the store with __float2half_rn / __float2bfloat16_rn
// (the conversions the GPU smoke test checks against the host's). The
// RMSNorm sum of squares is a block tree reduction (a different order from
// the CPU's sequential sum, covered by gamma_n in the error model): per-thread
// strided sums, a butterfly per warp, then over the warps; one block per
// row, 256 threads, any row length. The fused kernels the graph decoder uses
// (residual_rmsnorm, silu_mul_acc) call the same device functions in the
// same order as the separate ones, so both decoders round identically. Grid-stride loops for the
// elementwise kernels, so any size launches.
#include "model/model_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/check.cuh"

namespace attncheck::model_kernels {

namespace {

template <DType T>
struct Store;
template <>
struct Store<DType::f32> {
    using type = float;
    __device__ static float load(const float* p, long long i) { return p[i]; }
    __device__ static void put(float* p, long long i, float x) { p[i] = x; }
};
template <>
struct Store<DType::f16> {
    using type = __half;
    __device__ static float load(const __half* p, long long i) { return __half2float(p[i]); }
    __device__ static void put(__half* p, long long i, float x) { p[i] = __float2half_rn(x); }
};
template <>
struct Store<DType::bf16> {
    using type = __nv_bfloat16;
    __device__ static float load(const __nv_bfloat16* p, long long i) { return __bfloat162float(p[i]); }
    __device__ static void put(__nv_bfloat16* p, long long i, float x) { p[i] = __float2bfloat16_rn(x); }
};

template <DType T>
using S = typename Store<T>::type;

constexpr int kThreads = 256;

int blocks_for(long long n) {
    long long b = (n + kThreads - 1) / kThreads;
    return static_cast<int>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

template <DType T>
__global__ void embed_kernel(const int* tokens, int rows, const S<T>* embed, int hidden, S<T>* out) {
    const long long n = static_cast<long long>(rows) * hidden;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = i / hidden, c = i % hidden;
        out[i] = embed[static_cast<long long>(tokens[r]) * hidden + c];
    }
}

// The block's sum of its threads' partial sums: an xor butterfly in each
// warp, then warp 0 over the warp sums (two barriers, not a tree of
// log2(threads)). Every thread returns the total. The order is fixed by the
// thread count, so the checked engine and the graph decoder, which both
// call this with kThreads, sum in the same order.
__device__ float block_sum(float x) {
    __shared__ float warp_sum[kThreads / 32];
    for (int off = 16; off > 0; off /= 2) x = __fadd_rn(x, __shfl_xor_sync(0xffffffffu, x, off));
    if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = x;
    __syncthreads();
    if (threadIdx.x < 32) {
        float y = threadIdx.x < blockDim.x / 32 ? warp_sum[threadIdx.x] : 0.0f;
        for (int off = 16; off > 0; off /= 2) y = __fadd_rn(y, __shfl_xor_sync(0xffffffffu, y, off));
        if (threadIdx.x == 0) warp_sum[0] = y;
    }
    __syncthreads();
    return warp_sum[0];
}

// 1 / sqrt(sum/n + eps): IEEE sqrtf and division (no rsqrtf), as on the CPU.
__device__ float rms_inverse(float sum_sq, int n, float eps) {
    return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(sum_sq, static_cast<float>(n)), eps)));
}

// x rounded to T and read back as float: the value a store to T then a load gives.
template <DType T>
__device__ float round_to(float x) {
    S<T> r;
    Store<T>::put(&r, 0, x);
    return Store<T>::load(&r, 0);
}

// out = T(g * (x * inv)) over one row, the second pass of every RMSNorm.
template <DType T>
__device__ void write_normalized(const S<T>* __restrict__ x, const S<T>* __restrict__ g, int n, long long base,
                                 float inv, S<T>* __restrict__ out) {
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        Store<T>::put(out, base + i, __fmul_rn(Store<T>::load(g, i), __fmul_rn(Store<T>::load(x, base + i), inv)));
}

// A fused QKV output plus its bias (when there is one), fp32.
template <DType T>
__device__ float with_bias(float y, const S<T>* bias, int j) {
    return bias ? __fadd_rn(y, Store<T>::load(bias, j)) : y;
}

// One RoPE rotation of the pair (xa, xb); both engines' kernels use it.
__device__ void rotate_pair(float xa, float xb, float cs, float sn, float& oa, float& ob) {
    oa = __fsub_rn(__fmul_rn(xa, cs), __fmul_rn(xb, sn));
    ob = __fadd_rn(__fmul_rn(xb, cs), __fmul_rn(xa, sn));
}

// Channels (a, b) of rotation pair p: rotate_half (0) or interleaved (1).
__device__ void pair_channels(int pairing, int p, int half, int& a, int& b) {
    a = pairing == 0 ? p : 2 * p;
    b = pairing == 0 ? p + half : 2 * p + 1;
}

// Row kernels: __restrict__ and unrolled strided loops, so a thread's loads
// are issued together instead of each waiting for the previous iteration's
// store (at batch 1 a row kernel is pure latency). The per-thread sums still
// run in index order.
template <DType T>
__global__ void rmsnorm_kernel(const S<T>* __restrict__ x, const S<T>* __restrict__ g, int n, float eps,
                               S<T>* __restrict__ out) {
    const long long base = static_cast<long long>(blockIdx.x) * n;
    float acc = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = Store<T>::load(x, base + i);
        acc = __fadd_rn(acc, __fmul_rn(v, v));
    }
    write_normalized<T>(x, g, n, base, rms_inverse(block_sum(acc), n, eps), out);
}

// store + residual_add + rmsnorm in one pass per row: o = T(acc), h = T(h + o),
// out = RMSNorm(h); the same operations as the three kernels in sequence.
template <DType T>
__global__ void residual_rmsnorm_kernel(const float* __restrict__ acc, S<T>* __restrict__ h, const S<T>* __restrict__ g,
                                        int n, float eps, S<T>* __restrict__ out) {
    const long long base = static_cast<long long>(blockIdx.x) * n;
    float sum = 0.0f;
#pragma unroll 4
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = round_to<T>(__fadd_rn(Store<T>::load(h, base + i), round_to<T>(acc[base + i])));
        Store<T>::put(h, base + i, v); // exact: v is already a T value
        sum = __fadd_rn(sum, __fmul_rn(v, v));
    }
    write_normalized<T>(h, g, n, base, rms_inverse(block_sum(sum), n, eps), out);
}

template <DType T>
__global__ void split_qkv_kernel(const float* acc, const S<T>* bias, int rows, int q_dim, int n_kv, int hd,
                                 bool k_transposed, S<T>* q, S<T>* k, S<T>* v) {
    const int kv_dim = n_kv * hd, width = q_dim + 2 * kv_dim;
    const long long n = static_cast<long long>(rows) * width;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = i / width;
        const int j = static_cast<int>(i % width);
        const float y = with_bias<T>(acc[i], bias, j);
        if (j < q_dim)
            Store<T>::put(q, r * q_dim + j, y);
        else if (j < q_dim + kv_dim) {
            // Fused buffer holds K as [n_kv][head_dim]; the mutant reads
            // element (h, c) from c * n_kv + h, i.e. writes src index j' to
            // the (h, c) with j' = c * n_kv + h.
            int dst = j - q_dim;
            if (k_transposed) {
                const int c = dst / n_kv, h = dst % n_kv;
                dst = h * hd + c;
            }
            Store<T>::put(k, r * kv_dim + dst, y);
        } else
            Store<T>::put(v, r * kv_dim + (j - q_dim - kv_dim), y);
    }
}

template <DType T>
__global__ void rope_kernel(const S<T>* x, const float* cosv, const float* sinv, int rows, int heads, int hd,
                            int pairing, S<T>* out) {
    const int half = hd / 2;
    const long long n = static_cast<long long>(rows) * heads * half;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const int p = static_cast<int>(i % half);
        const long long rh = i / half;
        const long long r = rh / heads;
        int a, b;
        pair_channels(pairing, p, half, a, b);
        const long long base = rh * hd;
        float oa, ob;
        rotate_pair(Store<T>::load(x, base + a), Store<T>::load(x, base + b), cosv[r * half + p], sinv[r * half + p],
                    oa, ob);
        Store<T>::put(out, base + a, oa);
        Store<T>::put(out, base + b, ob);
    }
}

template <DType T>
__global__ void store_kernel(const float* in, long long n, S<T>* out) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        Store<T>::put(out, i, in[i]);
}

template <DType T>
__global__ void residual_kernel(S<T>* h, const S<T>* a, long long n) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        Store<T>::put(h, i, __fadd_rn(Store<T>::load(h, i), Store<T>::load(a, i)));
}

// expf (full accuracy, 2 ulp), not __expf: the error model counts 2 ulp.
__device__ float silu_times(float g, float u) { return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u); }

template <DType T>
__global__ void silu_mul_kernel(const S<T>* g, const S<T>* u, long long n, S<T>* out) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        Store<T>::put(out, i, silu_times(Store<T>::load(g, i), Store<T>::load(u, i)));
}

// The gate and up GEMM outputs stored to T, then silu_mul: one pass.
template <DType T>
__global__ void silu_mul_acc_kernel(const float* g, const float* u, long long n, S<T>* out) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        Store<T>::put(out, i, silu_times(round_to<T>(g[i]), round_to<T>(u[i])));
}

__global__ void begin_step_kernel(int* len, int* pos, int rows) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows) pos[r] = len[r]++;
}

// split_qkv + RoPE of q and k + kv_append in one pass, reading cos/sin from
// the all-positions tables at pos[r]. Work item per row: a rotation pair of
// a q head, a rotation pair of a k head, or a v channel.
template <DType T>
__global__ void qkv_rope_append_kernel(const float* acc, const S<T>* bias, int rows, int n_q, int n_kv, int hd,
                                       int pairing, const float* cos_tab, const float* sin_tab, const int* pos,
                                       long long stride, S<T>* q_out, S<T>* k_cache, S<T>* v_cache) {
    const int half = hd / 2, q_dim = n_q * hd, kv_dim = n_kv * hd, width = q_dim + 2 * kv_dim;
    const int q_items = n_q * half, k_items = n_kv * half, per_row = q_items + k_items + kv_dim;
    const long long n = static_cast<long long>(rows) * per_row;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = i / per_row;
        int item = static_cast<int>(i % per_row);
        const float* y = acc + r * width;
        auto biased = [&](int j) { return round_to<T>(with_bias<T>(y[j], bias, j)); };
        const long long cache_row = r * stride + pos[r];
        if (item >= q_items + k_items) { // a v channel, straight to the cache
            const int c = item - q_items - k_items;
            Store<T>::put(v_cache, cache_row * kv_dim + c, biased(q_dim + kv_dim + c));
            continue;
        }
        const bool is_q = item < q_items;
        if (!is_q) item -= q_items;
        const int head = item / half, p = item % half;
        int a, b;
        pair_channels(pairing, p, half, a, b);
        const int src = (is_q ? 0 : q_dim) + head * hd;
        const long long angle = static_cast<long long>(pos[r]) * half + p;
        float oa, ob;
        rotate_pair(biased(src + a), biased(src + b), cos_tab[angle], sin_tab[angle], oa, ob);
        if (is_q) {
            Store<T>::put(q_out, r * q_dim + head * hd + a, oa);
            Store<T>::put(q_out, r * q_dim + head * hd + b, ob);
        } else {
            Store<T>::put(k_cache, cache_row * kv_dim + head * hd + a, oa);
            Store<T>::put(k_cache, cache_row * kv_dim + head * hd + b, ob);
        }
    }
}

// Greedy argmax in two passes, so that a 150k-entry row is read by many
// blocks: blocks of kArgmaxChunk logits each find their first largest value,
// then one block per row takes the first largest of those. Index -2 marks a
// chunk that held a NaN, -1 an empty one.
constexpr int kArgmaxChunk = 2048;

// The block's (value, index) with the largest value, the smaller index on a
// tie, NaN-marked (-2) indices winning; every thread returns it.
__device__ void block_argmax(float& v, int& i) {
    __shared__ float sv[kThreads];
    __shared__ int si[kThreads];
    sv[threadIdx.x] = v;
    si[threadIdx.x] = i;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) {
            const float ov = sv[threadIdx.x + w], mv = sv[threadIdx.x];
            const int oi = si[threadIdx.x + w], mi = si[threadIdx.x];
            const bool take = mi != -2 && (oi == -2 || (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))));
            if (take) {
                sv[threadIdx.x] = ov;
                si[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    v = sv[0];
    i = si[0];
}

__global__ void argmax_chunk_kernel(const float* logits, int vocab, int chunks, float* part_v, int* part_i) {
    const float* z = logits + static_cast<long long>(blockIdx.y) * vocab;
    const int begin = blockIdx.x * kArgmaxChunk, end = min(vocab, begin + kArgmaxChunk);
    float bv = -INFINITY;
    int bi = -1;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float x = z[i];
        if (x != x)
            bi = -2;
        else if (bi != -2 && (bi < 0 || x > bv)) {
            bv = x;
            bi = i;
        }
    }
    block_argmax(bv, bi);
    if (threadIdx.x == 0) {
        part_v[blockIdx.y * chunks + blockIdx.x] = bv;
        part_i[blockIdx.y * chunks + blockIdx.x] = bi;
    }
}

__global__ void argmax_rows_kernel(const float* part_v, const int* part_i, int chunks, int* tokens) {
    float bv = -INFINITY;
    int bi = -1;
    for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
        const float v = part_v[blockIdx.x * chunks + c];
        const int i = part_i[blockIdx.x * chunks + c];
        if (i == -2)
            bi = -2;
        else if (bi != -2 && i >= 0 && (bi < 0 || v > bv)) {
            bv = v;
            bi = i;
        }
    }
    block_argmax(bv, bi);
    if (threadIdx.x == 0) tokens[blockIdx.x] = bi < 0 ? -1 : bi;
}

// Runs BODY with the constexpr DType T of the runtime dtype (CUDA is built
// as C++17 here: no templated lambdas).
#define MODEL_DISPATCH(t, ...)               \
    switch (t) {                             \
        case DType::f32: {                   \
            constexpr DType T = DType::f32;  \
            __VA_ARGS__;                     \
        } break;                             \
        case DType::f16: {                   \
            constexpr DType T = DType::f16;  \
            __VA_ARGS__;                     \
        } break;                             \
        case DType::bf16: {                  \
            constexpr DType T = DType::bf16; \
            __VA_ARGS__;                     \
        } break;                             \
    }

} // namespace

void embed_gather(DType t, const int* tokens, int rows, const void* embed, int hidden, void* out, cudaStream_t s) {
    MODEL_DISPATCH(t, embed_kernel<T><<<blocks_for(static_cast<long long>(rows) * hidden), kThreads, 0, s>>>(
                          tokens, rows, static_cast<const S<T>*>(embed), hidden, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

void rmsnorm(DType t, const void* x, const void* g, int rows, int n, float eps, void* out, cudaStream_t s) {
    if (rows == 0) return;
    MODEL_DISPATCH(t, rmsnorm_kernel<T><<<rows, kThreads, 0, s>>>(
                          static_cast<const S<T>*>(x), static_cast<const S<T>*>(g), n, eps, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

void split_qkv(DType t, const float* acc, const void* bias, int rows, int q_dim, int n_kv, int head_dim,
               bool k_transposed, void* q, void* k, void* v, cudaStream_t s) {
    MODEL_DISPATCH(t, split_qkv_kernel<T>
                   <<<blocks_for(static_cast<long long>(rows) * (q_dim + 2 * n_kv * head_dim)), kThreads, 0, s>>>(
                       acc, static_cast<const S<T>*>(bias), rows, q_dim, n_kv, head_dim, k_transposed,
                       static_cast<S<T>*>(q), static_cast<S<T>*>(k), static_cast<S<T>*>(v));
                   CUDA_CHECK_LAUNCH())
}

void rope(DType t, const void* x, const float* cosv, const float* sinv, int rows, int heads, int head_dim, int pairing,
          void* out, cudaStream_t s) {
    MODEL_DISPATCH(
        t, rope_kernel<T><<<blocks_for(static_cast<long long>(rows) * heads * (head_dim / 2)), kThreads, 0, s>>>(
               static_cast<const S<T>*>(x), cosv, sinv, rows, heads, head_dim, pairing, static_cast<S<T>*>(out));
        CUDA_CHECK_LAUNCH())
}

void store(DType t, const float* in, long long n, void* out, cudaStream_t s) {
    MODEL_DISPATCH(t, store_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(in, n, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

void residual_add(DType t, void* h, const void* a, long long n, cudaStream_t s) {
    MODEL_DISPATCH(
        t, residual_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<S<T>*>(h), static_cast<const S<T>*>(a), n);
        CUDA_CHECK_LAUNCH())
}

void silu_mul(DType t, const void* g, const void* u, long long n, void* out, cudaStream_t s) {
    MODEL_DISPATCH(t, silu_mul_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(
                          static_cast<const S<T>*>(g), static_cast<const S<T>*>(u), n, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

void begin_step(int* len, int* pos, int rows, cudaStream_t s) {
    begin_step_kernel<<<(rows + kThreads - 1) / kThreads, kThreads, 0, s>>>(len, pos, rows);
    CUDA_CHECK_LAUNCH();
}

int argmax_scratch(int rows, int vocab) { return rows * ((vocab + kArgmaxChunk - 1) / kArgmaxChunk); }

void argmax_rows(const float* logits, int rows, int vocab, float* scratch_v, int* scratch_i, int* tokens,
                 cudaStream_t s) {
    if (rows == 0) return;
    const int chunks = (vocab + kArgmaxChunk - 1) / kArgmaxChunk;
    argmax_chunk_kernel<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rows)), kThreads, 0, s>>>(
        logits, vocab, chunks, scratch_v, scratch_i);
    CUDA_CHECK_LAUNCH();
    argmax_rows_kernel<<<rows, kThreads, 0, s>>>(scratch_v, scratch_i, chunks, tokens);
    CUDA_CHECK_LAUNCH();
}

void residual_rmsnorm(DType t, const float* acc, void* h, const void* g, int rows, int n, float eps, void* out,
                      cudaStream_t s) {
    if (rows == 0) return;
    MODEL_DISPATCH(t, residual_rmsnorm_kernel<T><<<rows, kThreads, 0, s>>>(
                          acc, static_cast<S<T>*>(h), static_cast<const S<T>*>(g), n, eps, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

void qkv_rope_append(DType t, const float* acc, const void* bias, int rows, int n_q, int n_kv, int head_dim,
                     int pairing, const float* cos_tab, const float* sin_tab, const int* pos, long long stride,
                     void* q_out, void* k_cache, void* v_cache, cudaStream_t s) {
    const long long items = static_cast<long long>(rows) * ((n_q + n_kv) * (head_dim / 2) + n_kv * head_dim);
    MODEL_DISPATCH(
        t, qkv_rope_append_kernel<T><<<blocks_for(items), kThreads, 0, s>>>(
               acc, static_cast<const S<T>*>(bias), rows, n_q, n_kv, head_dim, pairing, cos_tab, sin_tab, pos, stride,
               static_cast<S<T>*>(q_out), static_cast<S<T>*>(k_cache), static_cast<S<T>*>(v_cache));
        CUDA_CHECK_LAUNCH())
}

void silu_mul_acc(DType t, const float* g, const float* u, long long n, void* out, cudaStream_t s) {
    MODEL_DISPATCH(t, silu_mul_acc_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(g, u, n, static_cast<S<T>*>(out));
                   CUDA_CHECK_LAUNCH())
}

} // namespace attncheck::model_kernels
