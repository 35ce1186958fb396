// Stage names and widths (see model_trace.hpp).
#include "model/model_trace.hpp"

namespace attncheck {

const char* stage_name(Stage s) {
    static const char* names[] = {"embed",    "attn_norm", "q",         "k",          "v",        "q_rope", "k_rope",
                                  "kv_cache", "attn_out",  "o_proj",    "resid_attn", "ffn_norm", "gate",   "up",
                                  "act",      "down",      "resid_ffn", "final_norm", "logits"};
    static_assert(sizeof(names) / sizeof(names[0]) == kStages);
    const int i = static_cast<int>(s);
    return i >= 0 && i < kStages ? names[i] : "?";
}

bool stage_is_global(Stage s) { return s == Stage::embed || s == Stage::final_norm || s == Stage::logits; }

int stage_width(const ModelConfig& c, Stage s) {
    switch (s) {
        case Stage::embed:
        case Stage::attn_norm:
        case Stage::o_proj:
        case Stage::resid_attn:
        case Stage::ffn_norm:
        case Stage::down:
        case Stage::resid_ffn:
        case Stage::final_norm:
            return c.hidden;
        case Stage::q:
        case Stage::q_rope:
        case Stage::attn_out:
            return c.q_dim();
        case Stage::k:
        case Stage::v:
        case Stage::k_rope:
            return c.kv_dim();
        case Stage::kv_cache:
            return 0;
        case Stage::gate:
        case Stage::up:
        case Stage::act:
            return c.ffn;
        case Stage::logits:
            return c.vocab;
        case Stage::count_:
            break;
    }
    return 0;
}

void ModelTrace::init(const ModelConfig& c, std::vector<std::pair<int, int>> r) {
    layers = c.layers;
    rows = std::move(r);
    values.assign(static_cast<size_t>(layers + 1) * kStages, {});
    for (int l = 0; l <= layers; ++l)
        for (int s = 0; s < kStages; ++s) {
            const Stage st = static_cast<Stage>(s);
            if (stage_is_global(st) != (l == layers)) continue;
            values[static_cast<size_t>(l) * kStages + s].assign(rows.size() * static_cast<size_t>(stage_width(c, st)),
                                                                0.0f);
        }
    attn.assign(static_cast<size_t>(layers), {});
    attn_seq_ids.assign(static_cast<size_t>(layers), {});
    attn_target.assign(static_cast<size_t>(layers), {});
    attn_profile.assign(static_cast<size_t>(layers), {});
}

} // namespace attncheck
