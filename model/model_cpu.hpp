// The decoder on the CPU backend (CI's system under test, and the twin of
// the CUDA model: same operations, same rounding points).
//
// Numerics (T = the config dtype; every accumulation in fp32, IEEE float
// operations in a fixed order, no FMA contraction):
//   embedding   exact gather of T values
//   RMSNorm     r = 1 / sqrt(sum(x^2)/n + eps) in fp32; y = T(g * (x * r))
//   QKV         y = T(fp32(W x) + b)   (bias added in fp32 before the store)
//   RoPE        y = T(x_a c - x_b s) etc., c/s fp32 from fp64 angles
//   KV cache    holds the T values of k_rope and v
//   attention   the chosen attention family; O stored in T (its profile)
//   o_proj      T(W o);  residual  h = T(h + o_proj)
//   FFN         gate, up = T(W x); act = T(silu(gate) * up) in fp32;
//               down = T(W act); residual h = T(h + down)
//   final norm  as RMSNorm; logits = fp32(W_lm x), not rounded to T
// Where a real engine stores an activation in T (residual stream, norm
// outputs, projections, attention output), this one rounds to T; nothing is
// rounded anywhere else. docs/model-error-model.md derives the bound from
// exactly these rounding points.
#pragma once

#include <memory>

#include "model/model_engine.hpp"

namespace attncheck {

std::unique_ptr<ModelEngine> make_cpu_model(const ModelWeights& w, int slots, ModelMutant m = ModelMutant::none);

} // namespace attncheck
