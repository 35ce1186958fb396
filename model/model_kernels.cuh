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

// The device-resident decode step (model/graph_decoder.cu): every argument a
// device pointer, so a captured CUDA graph replays the step with new values.
//
// pos[r] = len[r]; len[r] += 1 (the new token's position, and the cache
// length attention sees).
void begin_step(int* len, int* pos, int rows, cudaStream_t s);
// tokens[r] = the first index of the largest logit of row r (StepOutput::argmax's
// rule), or -1 when the row holds a NaN; scratch_v/scratch_i hold
// argmax_scratch(rows, vocab) entries.
int argmax_scratch(int rows, int vocab);
void argmax_rows(const float* logits, int rows, int vocab, float* scratch_v, int* scratch_i, int* tokens,
                 cudaStream_t s);
// Fused, for the graph decoder: store(acc -> T) + residual_add into h +
// rmsnorm(h) -> out, the same roundings as the three launches in sequence.
void residual_rmsnorm(DType t, const float* acc, void* h, const void* g, int rows, int n, float eps, void* out,
                      cudaStream_t s);
// Fused: split_qkv (+ bias) -> q, k, v in T; RoPE of q into q_out and of k
// into the cache row (r * stride + pos[r]), v into that row too; cos/sin
// from [position][head_dim/2] tables at pos[r].
void qkv_rope_append(DType t, const float* acc, const void* bias, int rows, int n_q, int n_kv, int head_dim,
                     int pairing, const float* cos_tab, const float* sin_tab, const int* pos, long long stride,
                     void* q_out, void* k_cache, void* v_cache, cudaStream_t s);
// Fused: out = T(silu(T(g)) * T(u)) from the fp32 gate and up GEMM outputs.
void silu_mul_acc(DType t, const float* g, const float* u, long long n, void* out, cudaStream_t s);

} // namespace attncheck::model_kernels
