// The decoder on the CUDA backend: the same operations and rounding points
// as the CPU engine (model/model_cpu.hpp), so the same error model
// judges both.
//
// GEMMs are cuBLAS GemmEx with T inputs (fp32/fp16/bf16), fp32 output and
// fp32 compute (CUBLAS_COMPUTE_32F_PEDANTIC for fp32: no TF32, no
// emulation; reduced-precision reductions disallowed);
// small kernels (model/model_kernels.cu) do RMSNorm, the bias add and
// QKV split, RoPE, SwiGLU, residual adds and the stores to T. Weights,
// activations and the KV cache live on the device in guarded buffers;
// activations are NaN-poisoned before each call and every guard band is
// checked after it.
//
// Known limit: attention goes through the existing CUDA attention targets,
// which take a host AttentionProblem, so each layer downloads Q and the
// slot caches, runs the target, and uploads O. Correct, and slow for long
// contexts; it is what lets every family, mutant, probe and trace run here.
// The fast path that stays on the device is model/graph_decoder.hpp, held
// to this engine bit for bit.
#pragma once

#include <memory>

#include "model/model_engine.hpp"

namespace attncheck {

// Throws ModelError when the CUDA backend is not built or no device is usable.
std::unique_ptr<ModelEngine> make_cuda_model(const ModelWeights& w, int slots, ModelMutant m = ModelMutant::none);

} // namespace attncheck
