// See model_device.cuh.
#include "model/model_device.cuh"

#include <cstring>

#include <fmt/format.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/check.cuh"
#include "kernels/common/device_convert.cuh"

namespace attncheck::model_device {

namespace {

cudaDataType_t cuda_type(DType t) { return t == DType::f32 ? CUDA_R_32F : t == DType::f16 ? CUDA_R_16F : CUDA_R_16BF; }

using kernels::to_f;

// The small-batch GEMM: one warp per output channel o, streaming W's row o
// in 16-byte chunks (lane c takes chunks c, c + 32, ...), each chunk's
// elements multiplied into every input row's fp32 accumulator in order with
// fmaf, then an xor butterfly over the lanes. The summation order depends
// only on `in`, so a row's result is the same at any batch size up to 16,
// and the checked engine and the graph decoder agree bit for bit.
// Rows not a multiple of 16 bytes take the scalar path (one element per
// lane per step), same structure.
constexpr int kGemvWarps = 8; // output channels per 256-thread block
constexpr int kChunkBytes = 16;

// Element e of a 16-byte chunk as float, by bit operations on its 32-bit
// words (an address-taken uint4 would go through local memory).
__device__ __forceinline__ unsigned word(const uint4& c, int i) {
    return i == 0 ? c.x : i == 1 ? c.y : i == 2 ? c.z : c.w;
}
template <class T>
__device__ __forceinline__ float chunk_elem(const uint4& c, int e);
template <>
__device__ __forceinline__ float chunk_elem<float>(const uint4& c, int e) {
    return __uint_as_float(word(c, e));
}
template <>
__device__ __forceinline__ float chunk_elem<__nv_bfloat16>(const uint4& c, int e) {
    const unsigned w = word(c, e / 2);
    return __uint_as_float(e % 2 == 0 ? w << 16 : w & 0xffff0000u); // bf16 widens by appending 16 zero bits
}
template <>
__device__ __forceinline__ float chunk_elem<__half>(const uint4& c, int e) {
    const unsigned w = word(c, e / 2);
    return __half2float(__ushort_as_half(static_cast<unsigned short>(e % 2 == 0 ? w & 0xffffu : w >> 16)));
}

template <class T, int R>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const T* __restrict__ W0, float* __restrict__ Y0, int out0, const T* __restrict__ W1,
                float* __restrict__ Y1, int out1, int in, const T* __restrict__ X, int rows) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    // Blocks [0, ceil(out0 / warps)) serve (W0, Y0), the rest (W1, Y1).
    const int blocks0 = (out0 + kGemvWarps - 1) / kGemvWarps;
    const bool second = static_cast<int>(blockIdx.x) >= blocks0;
    const int o = (second ? static_cast<int>(blockIdx.x) - blocks0 : static_cast<int>(blockIdx.x)) * kGemvWarps + warp;
    const int out = second ? out1 : out0;
    if (o >= out) return;
    const T* w = (second ? W1 : W0) + static_cast<long long>(o) * in;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.0f;
    constexpr int V = kChunkBytes / static_cast<int>(sizeof(T));
    if ((in * static_cast<int>(sizeof(T))) % kChunkBytes == 0) {
        const int chunks = in / V;
#pragma unroll 4
        for (int c = lane; c < chunks; c += 32) {
            const uint4 wc = reinterpret_cast<const uint4*>(w)[c];
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r < rows) {
                    const uint4 xc = reinterpret_cast<const uint4*>(X + static_cast<long long>(r) * in)[c];
#pragma unroll
                    for (int e = 0; e < V; ++e) acc[r] = __fmaf_rn(chunk_elem<T>(wc, e), chunk_elem<T>(xc, e), acc[r]);
                }
            }
        }
    } else {
        for (int k = lane; k < in; k += 32) {
            const float wk = to_f(w[k]);
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (r < rows) acc[r] = __fmaf_rn(wk, to_f(X[static_cast<long long>(r) * in + k]), acc[r]);
        }
    }
    float* y = second ? Y1 : Y0;
#pragma unroll
    for (int r = 0; r < R; ++r) {
        float v = acc[r];
        for (int off = 16; off > 0; off /= 2) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, off));
        if (lane == 0 && r < rows) y[static_cast<long long>(r) * out + o] = v;
    }
}

template <class T>
void launch_gemv(const void* W0, float* Y0, int out0, const void* W1, float* Y1, int out1, int in, const void* X,
                 int rows, cudaStream_t s) {
    const int blocks = (out0 + kGemvWarps - 1) / kGemvWarps + (out1 + kGemvWarps - 1) / kGemvWarps;
    const auto* w0 = static_cast<const T*>(W0);
    const auto* w1 = static_cast<const T*>(W1);
    const auto* x = static_cast<const T*>(X);
    // One accumulator per row in registers; callers send at most kGemvMaxRows rows.
    gemv_kernel<T, kGemvMaxRows><<<blocks, kGemvWarps * 32, 0, s>>>(w0, Y0, out0, w1, Y1, out1, in, x, rows);
    CUDA_CHECK_LAUNCH();
}

void gemv(cublasHandle_t h, DType t, const void* W0, float* Y0, int out0, const void* W1, float* Y1, int out1, int in,
          const void* X, int rows) {
    cudaStream_t s = nullptr;
    CUBLAS_CHECK(cublasGetStream(h, &s));
    switch (t) {
        case DType::f16:
            return launch_gemv<__half>(W0, Y0, out0, W1, Y1, out1, in, X, rows, s);
        case DType::bf16:
            return launch_gemv<__nv_bfloat16>(W0, Y0, out0, W1, Y1, out1, in, X, rows, s);
        default:
            return launch_gemv<float>(W0, Y0, out0, W1, Y1, out1, in, X, rows, s);
    }
}

} // namespace

std::vector<unsigned char> to_bytes(DType t, const float* x, size_t n) {
    std::vector<unsigned char> b(n * esize(t));
    for (size_t i = 0; i < n; ++i) {
        if (t == DType::f32)
            std::memcpy(&b[i * 4], &x[i], 4);
        else {
            const std::uint16_t h = t == DType::f16 ? float_to_f16_bits(x[i]) : float_to_bf16_bits(x[i]);
            std::memcpy(&b[i * 2], &h, 2);
        }
    }
    return b;
}

std::vector<float> from_bytes(DType t, const std::vector<unsigned char>& b) {
    const size_t n = b.size() / esize(t);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        if (t == DType::f32)
            std::memcpy(&x[i], &b[i * 4], 4);
        else {
            std::uint16_t h;
            std::memcpy(&h, &b[i * 2], 2);
            x[i] = t == DType::f16 ? f16_bits_to_float(h) : bf16_bits_to_float(h);
        }
    }
    return x;
}

Bytes upload(DType t, const std::vector<float>& x, const std::string& name) {
    Bytes b(x.size() * esize(t), name);
    b.upload(to_bytes(t, x.data(), x.size()));
    return b;
}

WeightsOnDevice::WeightsOnDevice(const ModelWeights& w) : tied(w.config.tied_embeddings) {
    const ModelConfig& c = w.config;
    const DType T = c.dtype;
    embed = upload(T, w.embed, "embed");
    if (!c.tied_embeddings) lm_head = upload(T, w.lm_head, "lm_head");
    final_norm = upload(T, w.final_norm, "final_norm");
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        LayerOnDevice d;
        const std::string p = fmt::format("layer{}.", l);
        d.attn_norm = upload(T, L.attn_norm, p + "attn_norm");
        d.ffn_norm = upload(T, L.ffn_norm, p + "ffn_norm");
        d.wqkv = upload(T, L.wqkv, p + "wqkv");
        if (c.qkv_bias) d.bqkv = upload(T, L.bqkv, p + "bqkv");
        d.wo = upload(T, L.wo, p + "wo");
        d.w_gate = upload(T, L.w_gate, p + "w_gate");
        d.w_up = upload(T, L.w_up, p + "w_up");
        d.w_down = upload(T, L.w_down, p + "w_down");
        layers.push_back(std::move(d));
    }
}

std::vector<GuardRegion> WeightsOnDevice::guards() const {
    std::vector<GuardRegion> g{embed.guards(), final_norm.guards()};
    if (!tied) g.push_back(lm_head.guards());
    for (const LayerOnDevice& d : layers)
        for (const Bytes* b : {&d.attn_norm, &d.ffn_norm, &d.wqkv, &d.bqkv, &d.wo, &d.w_gate, &d.w_up, &d.w_down})
            if (b->size()) g.push_back(b->guards());
    return g;
}

void gemm(cublasHandle_t h, DType t, const void* W, int out, int in, const void* X, int rows, float* Y) {
    if (rows <= kGemvMaxRows) return gemv(h, t, W, Y, out, nullptr, nullptr, 0, in, X, rows);
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType_t ct_in = cuda_type(t);
    const cublasComputeType_t ct = t == DType::f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, W, ct_in, in, X, ct_in, in, &zero, Y,
                              CUDA_R_32F, out, ct, CUBLAS_GEMM_DEFAULT));
}

void gemm_pair(cublasHandle_t h, DType t, const void* W0, float* Y0, const void* W1, float* Y1, int out, int in,
               const void* X, int rows) {
    if (rows <= kGemvMaxRows) return gemv(h, t, W0, Y0, out, W1, Y1, out, in, X, rows);
    gemm(h, t, W0, out, in, X, rows, Y0);
    gemm(h, t, W1, out, in, X, rows, Y1);
}

} // namespace attncheck::model_device
