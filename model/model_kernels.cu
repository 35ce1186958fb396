// Elementwise and per-row kernels of the CUDA decoder.
//
// Algorithm and limits: every kernel reads T values (fp32, fp16 or bf16
// bits), computes in fp32 with IEEE operations in the same order as the CPU
// engine (model/model_cpu.cpp) -- no fast-math intrinsics, no FMA
// contraction where the order matters (explicit __fmul_rn/__fadd_rn) -- and
// rounds once to T on the store with __float2half_rn / __float2bfloat16_rn
// (the conversions the GPU smoke test checks against the host's). The
// RMSNorm sum of squares is a block tree reduction (a different order from
// the CPU's sequential sum, covered by gamma_n in the error model); one
// block per row, 256 threads, any row length. Grid-stride loops for the
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

template <DType T>
__global__ void rmsnorm_kernel(const S<T>* x, const S<T>* g, int n, float eps, S<T>* out) {
    __shared__ float part[kThreads];
    const long long base = static_cast<long long>(blockIdx.x) * n;
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = Store<T>::load(x, base + i);
        acc = __fadd_rn(acc, __fmul_rn(v, v));
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) part[threadIdx.x] = __fadd_rn(part[threadIdx.x], part[threadIdx.x + w]);
        __syncthreads();
    }
    // 1 / sqrt: IEEE sqrtf and division (no rsqrtf), as on the CPU.
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(part[0], static_cast<float>(n)), eps)));
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        Store<T>::put(out, base + i, __fmul_rn(Store<T>::load(g, i), __fmul_rn(Store<T>::load(x, base + i), inv)));
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
        const float y = bias ? __fadd_rn(acc[i], Store<T>::load(bias, j)) : acc[i];
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
        const int a = pairing == 0 ? p : 2 * p, b = pairing == 0 ? p + half : 2 * p + 1;
        const long long base = rh * hd;
        const float cs = cosv[r * half + p], sn = sinv[r * half + p];
        const float xa = Store<T>::load(x, base + a), xb = Store<T>::load(x, base + b);
        Store<T>::put(out, base + a, __fsub_rn(__fmul_rn(xa, cs), __fmul_rn(xb, sn)));
        Store<T>::put(out, base + b, __fadd_rn(__fmul_rn(xb, cs), __fmul_rn(xa, sn)));
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

template <DType T>
__global__ void silu_mul_kernel(const S<T>* g, const S<T>* u, long long n, S<T>* out) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const float x = Store<T>::load(g, i);
        // expf (full accuracy, 2 ulp), not __expf: the error model counts 2 ulp.
        const float silu = __fdiv_rn(x, __fadd_rn(1.0f, expf(-x)));
        Store<T>::put(out, i, __fmul_rn(silu, Store<T>::load(u, i)));
    }
}

__global__ void begin_step_kernel(int* len, int* pos, int rows) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows) pos[r] = len[r]++;
}

__global__ void gather_rows_kernel(const float* table, const int* pos, int rows, int width, float* out) {
    const long long n = static_cast<long long>(rows) * width;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = i / width, c = i % width;
        out[i] = table[static_cast<long long>(pos[r]) * width + c];
    }
}

template <DType T>
__global__ void kv_append_kernel(const S<T>* k, const S<T>* v, const int* pos, int rows, long long stride, int kv_dim,
                                 S<T>* kc, S<T>* vc) {
    const long long n = static_cast<long long>(rows) * kv_dim;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long r = i / kv_dim, c = i % kv_dim;
        const long long at = (r * stride + pos[r]) * kv_dim + c;
        kc[at] = k[i];
        vc[at] = v[i];
    }
}

// One block per row: each thread scans a strided slice keeping its first
// largest value, then a tree reduction that prefers the smaller index on a
// tie, so the result is the first maximum whatever the thread count.
__global__ void argmax_kernel(const float* logits, int vocab, int* tokens) {
    __shared__ float best_v[kThreads];
    __shared__ int best_i[kThreads];
    __shared__ int saw_nan;
    if (threadIdx.x == 0) saw_nan = 0;
    __syncthreads();
    const float* z = logits + static_cast<long long>(blockIdx.x) * vocab;
    float bv = -INFINITY;
    int bi = -1;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float x = z[i];
        if (x != x) saw_nan = 1;
        else if (bi < 0 || x > bv) {
            bv = x;
            bi = i;
        }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) {
            const float ov = best_v[threadIdx.x + w];
            const int oi = best_i[threadIdx.x + w];
            const int mi = best_i[threadIdx.x];
            if (oi >= 0 && (mi < 0 || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mi))) {
                best_v[threadIdx.x] = ov;
                best_i[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) tokens[blockIdx.x] = saw_nan ? -1 : best_i[0];
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

void gather_rows(const float* table, const int* pos, int rows, int width, float* out, cudaStream_t s) {
    gather_rows_kernel<<<blocks_for(static_cast<long long>(rows) * width), kThreads, 0, s>>>(table, pos, rows, width,
                                                                                              out);
    CUDA_CHECK_LAUNCH();
}

void kv_append(DType t, const void* k, const void* v, const int* pos, int rows, long long stride, int kv_dim,
               void* k_cache, void* v_cache, cudaStream_t s) {
    MODEL_DISPATCH(t, kv_append_kernel<T><<<blocks_for(static_cast<long long>(rows) * kv_dim), kThreads, 0, s>>>(
                          static_cast<const S<T>*>(k), static_cast<const S<T>*>(v), pos, rows, stride, kv_dim,
                          static_cast<S<T>*>(k_cache), static_cast<S<T>*>(v_cache));
                   CUDA_CHECK_LAUNCH())
}

void argmax_rows(const float* logits, int rows, int vocab, int* tokens, cudaStream_t s) {
    if (rows == 0) return;
    argmax_kernel<<<rows, kThreads, 0, s>>>(logits, vocab, tokens);
    CUDA_CHECK_LAUNCH();
}

} // namespace attncheck::model_kernels
