// The interface both model engines (CPU, CUDA) implement: a decoder with a
// KV cache per sequence slot, run one call at a time on a batch of chunks.
//
// A call takes, for some sequence slots, the next tokens of that sequence
// (a whole prompt, a prefill chunk against the existing cache, or one decode
// token), appends their K/V to the slot's cache, and returns logits for
// every new token. Sequences in one call may have different lengths and
// cache lengths. Attention goes through a kernel family of the attention
// target registry (engine/targets/target.hpp), chosen per call.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/case/problem.hpp"
#include "engine/targets/target.hpp"
#include "model/model_mutant.hpp"
#include "model/model_trace.hpp"
#include "model/model_weights.hpp"

namespace attncheck {

// Bad use of a model engine (token out of range, unknown slot, unsupported
// attention target for this call...): a clear message, never a wrong answer.
struct ModelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct SeqChunk {
    int seq = 0;             // slot
    std::vector<int> tokens; // >= 1 token
};

struct ForwardOptions {
    // Attention family: decode, decode_gqa, decode_split (one token per
    // chunk), flash_prefill, standard_path; "auto": decode_gqa when every
    // chunk has one token, else flash_prefill when it supports the head
    // dim, else standard_path.
    std::string attention = "auto";
    int num_splits = 1; // for decode_split
    bool trace = false; // record every stage (for the divergence report)
};

struct StepOutput {
    std::vector<std::pair<int, int>> rows; // (slot, position) of each new token
    std::vector<float> logits;             // [rows][vocab], fp32
    std::string attention;                 // the family actually used
    std::optional<ModelTrace> trace;
    int argmax(size_t row) const;
};

class ModelEngine {
public:
    virtual ~ModelEngine() = default;
    virtual const ModelConfig& config() const = 0;
    virtual std::string name() const = 0; // "cpu/model" or "cuda/model" (+mutant)
    virtual int slots() const = 0;
    virtual int cache_len(int seq) const = 0;
    virtual void reset(int seq) = 0;
    virtual StepOutput forward(const std::vector<SeqChunk>& batch, const ForwardOptions& opt = {}) = 0;
};

// Checks a batch against the engine (slots valid and distinct, chunks
// non-empty, tokens in the vocabulary); throws ModelError.
void validate_batch(const ModelEngine& e, const std::vector<SeqChunk>& batch);
// The attention problem of one call: per chunk, its new tokens as queries
// against the slot's cache plus those tokens (causal, bottom-right), in the
// packed layout, with Q/K/V allocated (zero) for the engine to fill. Throws
// ModelError, before any cache is touched, when `target` refuses the shape.
AttentionProblem attention_problem_for(const ModelEngine& e, const Target& target, DType dtype,
                                       const std::vector<SeqChunk>& batch, int num_splits);
// "auto" resolved for this batch.
std::string resolve_attention(const ModelConfig& c, const std::vector<SeqChunk>& batch, const std::string& requested);

// Greedy generation in slot `seq` (reset first): prefill the prompt with
// `prefill`, then n_new decode steps with `decode`, each feeding back the
// previous argmax. Returns the n_new generated tokens.
std::vector<int> greedy_generate(ModelEngine& e, int seq, const std::vector<int>& prompt, int n_new,
                                 const ForwardOptions& prefill = {}, const ForwardOptions& decode = {});

} // namespace attncheck
