// The model-level mutants and the real bugs they stand for.
#include "model/model_mutant.hpp"

#include <algorithm>

namespace attncheck {

const std::vector<ModelMutantInfo>& all_model_mutants() {
    static const std::vector<ModelMutantInfo> v = {
        {ModelMutant::none, "none", "production model", ""},
        {ModelMutant::rope_wrong_pairing, "rope_wrong_pairing",
         "checkpoint converted between Meta/GGUF (interleaved) and Hugging Face (rotate-half) RoPE layouts without "
         "permuting the Q/K projection rows (llama.cpp convert scripts, many hand-written engines): positions > 0 "
         "get rotated in the wrong planes",
         "q_rope"},
        {ModelMutant::qkv_bias_dropped, "qkv_bias_dropped",
         "loader mapping the Llama tensor names onto a Qwen2 checkpoint, or a fused-QKV kernel without a bias "
         "epilogue: Qwen2's large Q/K biases are silently ignored",
         "q"},
        {ModelMutant::residual_lost, "residual_lost",
         "a fused add+RMSNorm kernel writing the normalized value over the residual buffer, or an in-place "
         "o_proj output aliasing the residual: the skip connection of one layer disappears (\"layer 0 fine, "
         "layer 1 explodes\")",
         "resid_attn"},
        {ModelMutant::kv_cache_wrong_position, "kv_cache_wrong_position",
         "the cache write index taken before/after the position counter was advanced (flash-attention #772, "
         "#1417): new K/V land one slot early, overwriting the previous token and leaving a stale slot",
         "kv_cache"},
        {ModelMutant::fused_k_wrong_layout, "fused_k_wrong_layout",
         "a fused path reading K from the fused QKV buffer with the head and channel strides swapped: the fused "
         "path explodes where the standard path with the same weights works",
         "k"},
        {ModelMutant::rope_scaling_ignored, "rope_scaling_ignored",
         "a loader that reads rope_theta but not rope_scaling (Llama 3.1's llama3 scaling, Qwen's yarn): short "
         "prompts look fine, the rotation frequencies are wrong at every position > 0",
         "q_rope"},
    };
    return v;
}

const char* model_mutant_name(ModelMutant m) {
    for (const auto& i : all_model_mutants())
        if (i.id == m) return i.name;
    return "?";
}

std::optional<ModelMutant> parse_model_mutant(std::string_view s) {
    for (const auto& i : all_model_mutants())
        if (s == i.name) return i.id;
    return std::nullopt;
}

ModelConfig rope_config(const ModelConfig& c, ModelMutant m) {
    ModelConfig r = c;
    if (m == ModelMutant::rope_scaling_ignored) r.rope_scaling = RopeScaling{};
    return r;
}

int model_mutant_layer(ModelMutant m, int layers) {
    // Layer 1 when there is one: a bug that leaves layer 0 intact and breaks
    // layer 1 is the pattern the report must localize.
    return m == ModelMutant::residual_lost ? std::min(1, layers - 1) : 0;
}

} // namespace attncheck
