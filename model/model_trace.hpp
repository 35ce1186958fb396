// The stages of one decoder forward, and the per-stage values an engine or
// the oracle records, so a divergence report can name the first layer and
// stage that leaves the error model.
//
// Layer stages are recorded for every row (token) the forward computed; the
// global stages (embedding, final norm, logits) sit in an extra slot after
// the last layer. Rows are in batch order: the chunks of the call, one after
// another, each chunk's tokens in position order.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/case/problem.hpp"
#include "engine/targets/precision_profile.hpp"
#include "model/model_config.hpp"

namespace attncheck {

enum class Stage : int {
    embed,     // token embedding (global slot)
    attn_norm, // RMSNorm before attention
    q,
    k,
    v, // projections (+ bias), before RoPE
    q_rope,
    k_rope,
    kv_cache, // the K/V the attention read, every cached position (not a per-row tensor)
    attn_out, // attention output, [q_heads][head_dim]
    o_proj,
    resid_attn, // residual stream after the attention block
    ffn_norm,
    gate,
    up,
    act, // silu(gate) * up
    down,
    resid_ffn,  // residual stream after the FFN block (the layer's output)
    final_norm, // (global slot)
    logits,     // (global slot)
    count_
};
inline constexpr int kStages = static_cast<int>(Stage::count_);

const char* stage_name(Stage s);
bool stage_is_global(Stage s);
// Width of one row of the stage (0 for kv_cache).
int stage_width(const ModelConfig& c, Stage s);

// Per-stage values of the rows of one forward call.
struct ModelTrace {
    int layers = 0;
    std::vector<std::pair<int, int>> rows; // (sequence id, position)
    // slot * kStages + stage, slot = layer or `layers` for the global stages;
    // each [rows][width].
    std::vector<std::vector<float>> values;
    // Per layer: the attention problem handed to the target (Q = q_rope of
    // the rows, K/V = the whole cache of each sequence), which sequence id
    // each problem sequence is, the target and its precision profile.
    std::vector<AttentionProblem> attn;
    std::vector<std::vector<int>> attn_seq_ids;
    std::vector<std::string> attn_target;
    std::vector<PrecisionProfile> attn_profile;

    void init(const ModelConfig& c, std::vector<std::pair<int, int>> r);
    std::vector<float>& at(int layer, Stage s) {
        return values[static_cast<size_t>(slot(layer, s)) * kStages + static_cast<int>(s)];
    }
    const std::vector<float>& at(int layer, Stage s) const {
        return values[static_cast<size_t>(slot(layer, s)) * kStages + static_cast<int>(s)];
    }
    int slot(int layer, Stage s) const { return stage_is_global(s) ? layers : layer; }
};

} // namespace attncheck
