// Launchers for the decoder's elementwise and row kernels
// (model_kernels.cu). Activations are stored in the model dtype T, passed
// as raw device pointers with the DType; every launcher checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "engine/case/dtype.hpp"

namespace attncheck::model_kernels {

// out[r][:] = embed[tokens[r]][:]
void embed_gather(DType t, const int* tokens, int rows, const void* embed, int hidden, void* out, cudaStream_t s);
// out = T(g * (x * r)), r = 1 / sqrt(sum(x^2)/n + eps), fp32.
void rmsnorm(DType t, const void* x, const void* g, int rows, int n, float eps, void* out, cudaStream_t s);
// acc fp32 [rows][q_dim + 2 kv_dim] (+ bias T, nullable) -> q, k, v in T.
// k_transposed: the fused_k_wrong_layout mutant's read of K.
void split_qkv(DType t, const float* acc, const void* bias, int rows, int q_dim, int n_kv, int head_dim,
               bool k_transposed, void* q, void* k, void* v, cudaStream_t s);
// Rotation of channel pairs (pairing: 0 rotate_half, 1 interleaved) by the
// fp32 cos/sin [rows][head_dim/2]; out = T(...).
void rope(DType t, const void* x, const float* cosv, const float* sinv, int rows, int heads, int head_dim, int pairing,
          void* out, cudaStream_t s);
// out[i] = T(in[i])
void store(DType t, const float* in, long long n, void* out, cudaStream_t s);
// h[i] = T(h[i] + a[i])
void residual_add(DType t, void* h, const void* a, long long n, cudaStream_t s);
// out[i] = T(silu(g[i]) * u[i]), fp32
void silu_mul(DType t, const void* g, const void* u, long long n, void* out, cudaStream_t s);

} // namespace attncheck::model_kernels
