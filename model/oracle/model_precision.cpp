// The precisions the model's error model is evaluated with: our engines on
// each backend, and transformers' fp32 eager forward (whose traces
// trace_from_json reads), each as the rounding units of its stages and the
// attention profile of its attention.
#include "model/oracle/model_oracle_check.hpp"

namespace attncheck {

ModelPrecision model_precision(const ModelConfig& c, Backend b) {
    ModelPrecision p;
    p.store = c.dtype;
    p.u_gemm = (b == Backend::cuda && c.dtype != DType::f32) ? 0x1p-23 : 0x1p-24;
    p.u_elem = 0x1p-24;
    // A profile that rounds at least as much as every attention family:
    // P stored in T, O in T, exp2-style 4 ulps, short tiles and a split merge.
    p.attn.input = c.dtype;
    p.attn.u_acc = p.u_gemm;
    p.attn.probs_stored = c.dtype != DType::f32;
    p.attn.store = c.dtype;
    p.attn.output = c.dtype;
    p.attn.exp_ulps = 4.0;
    p.attn.kv_tile = 16;
    p.attn.uses_splits = true;
    p.attn_splits = 8;
    return p;
}

ModelPrecision transformers_fp32_precision(const ModelConfig& c) {
    ModelConfig c32 = c;
    c32.dtype = DType::f32;
    ModelPrecision p = model_precision(c32, Backend::cpu);
    // inv_freq = 1 / theta^(2i/d) in fp32 (pow, division: a few ulps) and
    // the angle pos * inv_freq (one more): 8 u relative to the angle. A
    // scaling adds its fp32 operations on inv_freq (linear: a division;
    // llama3: the blend, 5 operations; yarn: the blend, 4): 8 u more. (yarn's
    // attention factor multiplies cos and sin once more in fp32: not yet in
    // the bound -- the cross-check on transformers' yarn will say.)
    p.rope_angle_rel = (c.rope_scaling.type == RopeScalingType::none ? 8.0 : 16.0) * 0x1p-24;
    return p;
}

PrecisionProfile transformers_fp32_attention_profile() {
    PrecisionProfile p;
    p.input = DType::f32;
    p.u_acc = 0x1p-24;
    p.scores_stored = false;
    p.probs_stored = false;
    p.store = DType::f32;
    p.output = DType::f32;
    p.exp_ulps = 4.0; // vectorized expf (SLEEF-style, <= 1 ulp documented); 4 declared
    p.kv_tile = 16;   // eager is one pass; the CPU SDPA kernel tiles keys
    p.uses_splits = false;
    return p;
}

} // namespace attncheck
