// Deliberate bugs at the model level (the engine-level ones live in
// engine/targets/mutant.hpp and are compiled into the attention kernels). These act
// in the model's host code -- how weights are applied, where the cache is
// written, how the fused QKV output is split -- so they are a runtime switch
// of the model engines (CPU and CUDA alike) and add no kernel
// instantiation. Each stands for a bug seen in real engines; the suite's
// tests assert that the per-layer divergence report catches each one and
// names the layer and stage where it happens.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "model/model_config.hpp"

namespace attncheck {

enum class ModelMutant : int {
    none = 0,
    rope_wrong_pairing,      // RoPE rotates (2i, 2i+1) for a rotate-half model, or the reverse
    qkv_bias_dropped,        // Q/K/V biases never added
    residual_lost,           // layer min(1, L-1): h = attn(h) instead of h + attn(h)
    kv_cache_wrong_position, // appending to a non-empty cache writes one slot early
    fused_k_wrong_layout,    // fused QKV output: K read as [head_dim][n_kv] instead of [n_kv][head_dim]
    rope_scaling_ignored,    // the config's rope_scaling dropped: plain RoPE frequencies
    count_
};

struct ModelMutantInfo {
    ModelMutant id;
    const char* name;
    const char* models;      // the real bug
    const char* first_stage; // where the divergence report must point
};

const std::vector<ModelMutantInfo>& all_model_mutants();
const char* model_mutant_name(ModelMutant m);
std::optional<ModelMutant> parse_model_mutant(std::string_view s);
// The config the engines build RoPE tables from: the model's, or with its
// scaling dropped for rope_scaling_ignored.
ModelConfig rope_config(const ModelConfig& c, ModelMutant m);

// The layer the mutant acts in first, for a model with `layers` layers.
int model_mutant_layer(ModelMutant m, int layers);

} // namespace attncheck
