// A model case: one complete, replayable run of the decoder. It holds the
// configuration, the random-weight recipe (seed, magnitudes, outliers) and a
// session schedule (calls of prefill chunks, decode steps and ragged
// batches over several slots, and resets), so that a failure found by the
// model campaign (model/model_campaign.hpp) is a file that `attncheck repro`
// replays bit for bit.
//
// JSON (docs/model-case.md):
//   {"attncheck_model_case": 1,
//    "config": {"arch": "qwen2", "vocab": 61, "hidden": 32, "layers": 2,
//               "n_q_heads": 4, "n_kv_heads": 2, "head_dim": 16, "ffn": 64,
//               "rope_theta": 10000, "rope_pairing": "rotate_half",
//               "rms_eps": 1e-6, "tied_embeddings": false, "qkv_bias": true,
//               "dtype": "bf16"},
//    "weights": {"seed": 7, "proj_std": 0.02, "embed_std": 0.02,
//                "massive_channels": [3], "massive_value": 30, "qk_bias_norm": 0},
//    "slots": 2,
//    "schedule": [{"call": [{"seq": 0, "tokens": [5, 9, 2]}], "attention": "auto", "num_splits": 1},
//                 {"reset": 0}, ...]}
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "model/model_engine.hpp"
#include "model/model_weights.hpp"

namespace attncheck {

struct ModelCaseError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ModelStep {
    bool reset = false; // a reset of `reset_slot`, else a call
    int reset_slot = 0;
    std::vector<SeqChunk> batch; // the call's chunks
    std::string attention = "auto";
    int num_splits = 1;
};
// A call of these chunks on an attention family ("auto" or a kernel family)
// with a split count, and a reset of one slot.
ModelStep model_call(std::vector<SeqChunk> batch, std::string attention = "auto", int splits = 1);
ModelStep model_reset(int slot);

struct ModelCase {
    ModelConfig config;
    RandomWeightOptions weights;
    int slots = 1;
    std::vector<ModelStep> schedule;
};

// Throws ModelCaseError (or ConfigError for the configuration) naming the
// first field that breaks a rule: slots in [1, 16], a non-empty schedule of
// at most 64 steps, every call a valid batch for the config (slots in range
// and distinct, chunks of 1..256 tokens inside the vocabulary), an attention
// family by name ("auto" or a kernel family), splits in [1, 64], weights'
// magnitudes finite and positive, massive channels inside hidden.
void validate(const ModelCase& c);

std::string model_case_to_json(const ModelCase& c);
// Parses and validates; ModelCaseError for malformed JSON or fields.
ModelCase model_case_from_json(const std::string& text);
// True when the text is a model case (has "attncheck_model_case").
bool looks_like_model_case(const std::string& text);

// One line: "llama 2L h32 4/2x16 ffn64 bf16, 5 steps over 2 slots".
std::string model_case_summary(const ModelCase& c);

} // namespace attncheck
