// What the two CUDA decoders share (model/model_cuda.cu, the checked engine;
// model/graph_decoder.cu, the device-resident CUDA-graph decoder): the
// weights on the device in the model dtype T, the host <-> T conversions,
// and the one GEMM form both use, so their numerics are one piece of code.
//
// The GEMM: Y[rows][out] (fp32) = X[rows][in] (T) * W[out][in]^T (T), fp32
// accumulation, on the handle's stream. For one row (a batch-1 decode step)
// it is our own GEMV kernel: one warp per output channel streaming W, fmaf
// into fp32 (u = 2^-24, within u_gemm), a summation order that depends only
// on `in`; at batch 1 cuBLAS spent 5-6 us of latency on each 2-9 MB weight
// and the GEMV took the decode step from 1.96 to 1.89 ms. The kernel takes
// up to 16 rows, but at 16 it made the step 3x slower than cuBLAS
// (bench/results/2026-12-02-h200-model-bench/gemv_16rows_39d1b8a), so
// kGemvMaxRows stays 1 until it is tuned. Above it, cuBLAS GemmEx with
// fp32 compute: for fp32 inputs the pedantic compute type (no TF32, no BF16x9 emulation), as the standard path does;
// for fp16/bf16 tensor cores with fp32 accumulation (u_gemm 2^-23 in the
// error model). The handle must disallow reduced-precision reductions
// (thread_cublas_handle and GraphDecoder's own handle do).
#pragma once

#include <cublas_v2.h>

#include <string>
#include <vector>

#include "engine/case/dtype.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "model/model_weights.hpp"

namespace attncheck::model_device {

using Bytes = DeviceBuffer<unsigned char>;

inline size_t esize(DType t) { return t == DType::f32 ? 4 : 2; }

// Host floats (exact in t) <-> the bytes of t.
std::vector<unsigned char> to_bytes(DType t, const float* x, size_t n);
std::vector<float> from_bytes(DType t, const std::vector<unsigned char>& b);
// A guarded device buffer holding x in t.
Bytes upload(DType t, const std::vector<float>& x, const std::string& name);

struct LayerOnDevice {
    Bytes attn_norm, ffn_norm, wqkv, bqkv, wo, w_gate, w_up, w_down;
};

// Every weight of a model, uploaded once (bqkv and lm_head empty when the
// config has no bias / ties the embeddings).
struct WeightsOnDevice {
    explicit WeightsOnDevice(const ModelWeights& w);
    Bytes embed, lm_head, final_norm;
    std::vector<LayerOnDevice> layers;
    bool tied = false;
    const Bytes& head() const { return tied ? embed : lm_head; }
    std::vector<GuardRegion> guards() const;
};

inline constexpr int kGemvMaxRows = 1;

// Y[rows][out] (fp32) = X[rows][in] * W[out][in]^T on the handle's stream.
void gemm(cublasHandle_t h, DType t, const void* W, int out, int in, const void* X, int rows, float* Y);
// Two GEMMs of one input and one shape (the gate and up projections): one
// launch up to kGemvMaxRows rows, each output bit-identical to gemm()'s.
void gemm_pair(cublasHandle_t h, DType t, const void* W0, float* Y0, const void* W1, float* Y1, int out, int in,
               const void* X, int rows);

} // namespace attncheck::model_device
