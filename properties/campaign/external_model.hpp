// A decoder served by an external model adapter (`attncheck run --target
// model --external "CMD"`, docs/adapter-protocol.md "Model adapters"): any
// implementation of the Llama/Qwen2 decoders, transformers' for one
// (python/attncheck_adapter/transformers_model.py). One process per run;
// for each model case attncheck writes the random weights as a Hugging Face
// checkpoint in a scratch folder and the adapter loads it, then the case's
// schedule runs as `forward` calls (chunks of tokens per KV slot, logits
// back) and `reset`s. Judged by external_model_check.hpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/model_case.hpp"
#include "properties/campaign/adapter_process.hpp"

namespace attncheck {

struct ModelAdapterCapabilities {
    std::string name;
    std::vector<ModelArch> archs;
    std::vector<DType> dtypes;
    std::vector<RopeScalingType> rope_scalings; // always has none
    std::string precision;                      // how it rounds: "fp32" (transformers' fp32 forward)
    // transformers (5.x) refuses a config whose hidden size is not a
    // multiple of its head count, even with head_dim given.
    bool hidden_divisible_by_heads = false;
};

// Parses a model adapter's capabilities JSON ("kind": "model"); throws
// std::invalid_argument naming the field.
ModelAdapterCapabilities parse_model_capabilities(const std::string& json_text);

// The case as an adapter with these capabilities can take it: the Hugging
// Face form (rotate_half RoPE, no Q/K/V biases on a Llama), one of its
// dtypes, architectures and RoPE scalings (the first listed replaces one it
// lacks), a hidden size it accepts. Deterministic, so a drawn case and its
// shrinks map alike.
ModelCase restrict_to(const ModelAdapterCapabilities& caps, ModelCase c);

// The adapter said it cannot run this model case.
struct UnsupportedModel : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class ModelAdapter {
public:
    // Starts the adapter; throws std::invalid_argument when it does not
    // answer as a model adapter.
    explicit ModelAdapter(std::string command);
    ~ModelAdapter();
    ModelAdapter(const ModelAdapter&) = delete;
    ModelAdapter& operator=(const ModelAdapter&) = delete;

    const ModelAdapterCapabilities& caps() const { return caps_; }
    const std::string& command() const { return process_.command(); }
    ModelCase restrict(ModelCase c) const { return restrict_to(caps_, std::move(c)); }

    // Writes the checkpoint and has the adapter load it with `slots` KV
    // slots; UnsupportedModel when it refuses, ModelError when it fails.
    void load(const ModelWeights& w, int slots);
    // Logits of every new token of the batch, [rows][vocab]; ModelError
    // when the adapter fails or answers the wrong number of values.
    std::vector<float> forward(const std::vector<SeqChunk>& batch);
    void reset(int seq);

private:
    Frame exchange(const Frame& request, const char* what);
    AdapterProcess process_;
    ModelAdapterCapabilities caps_;
    std::string scratch_; // the checkpoint folder, removed with the adapter
    int vocab_ = 0;
};

} // namespace attncheck
