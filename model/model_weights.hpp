// Host weights of a decoder: every value a float exactly representable in the
// config's dtype, so the CPU engine, the CUDA engine and the fp64 oracle all
// read the very same numbers.
//
// Layout (row-major, rows = outputs, as Hugging Face stores nn.Linear):
//   embed [vocab][hidden]; per layer: attn_norm, ffn_norm [hidden];
//   wqkv [q_dim + 2 kv_dim][hidden] -- the Q, K and V projections fused along
//   the output dimension (q rows, then k rows, then v rows), as fused-QKV
//   engines hold them; bqkv [q_dim + 2 kv_dim] or empty; wo [hidden][q_dim];
//   w_gate, w_up [ffn][hidden]; w_down [hidden][ffn]; final_norm [hidden];
//   lm_head [vocab][hidden] (empty when tied to embed).
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.hpp"

namespace attncheck {

struct LayerWeights {
    std::vector<float> attn_norm, ffn_norm;
    std::vector<float> wqkv, bqkv;
    std::vector<float> wo;
    std::vector<float> w_gate, w_up, w_down;
};

struct ModelWeights {
    ModelConfig config;
    std::vector<float> embed;
    std::vector<LayerWeights> layers;
    std::vector<float> final_norm;
    std::vector<float> lm_head;
    const std::vector<float>& lm_head_matrix() const { return config.tied_embeddings ? embed : lm_head; }
};

// Deterministic random weights. Defaults follow the usual initialization of
// these models (N(0, 0.02) projections and embeddings; RMSNorm gains near 1,
// here 1 + N(0, 0.1) so that a wrong gain index is visible), biases
// N(0, 0.02). The outlier switches reproduce what trained checkpoints have
// and random ones lack:
//   - massive activations: the embedding adds `massive_value` to the listed
//     residual-stream channels of every token (trained Llama/Qwen models grow
//     values in the hundreds or thousands in a few fixed channels within
//     their first layers; carrying them from the embedding gives them to
//     every layer, including layer 0);
//   - qk_bias_norm > 0: each head's Q and K bias vector is rescaled to this
//     Euclidean norm (Qwen2 checkpoints have K bias norms in the hundreds,
//     which makes logits large and the softmax sharp).
struct RandomWeightOptions {
    std::uint64_t seed = 1;
    double proj_std = 0.02;
    double embed_std = 0.02;
    double norm_gain_jitter = 0.1;
    double bias_std = 0.02;
    std::vector<int> massive_channels;
    double massive_value = 0.0;
    double qk_bias_norm = 0.0;
};

// Validates the config first; throws ConfigError for a bad massive channel.
ModelWeights random_weights(const ModelConfig& c, const RandomWeightOptions& o = {});

// Checks sizes against the config and that every value is finite and exact
// in the dtype; throws ConfigError naming the tensor otherwise.
void validate(const ModelWeights& w);

} // namespace attncheck
