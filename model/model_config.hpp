// The shape and numerics of a Llama/Qwen2-style decoder, and its reading from
// a Hugging Face config.json.
//
// One struct describes both architectures; `arch` only changes defaults
// (Qwen2 has Q/K/V biases and usually tied embeddings). Every field is
// validated against hard limits before any weight is allocated, so an absurd
// or hostile config (a vocabulary of 2^40, heads that do not divide hidden,
// a negative epsilon) gets a ConfigError naming the field, never an
// allocation failure or a silent wrong model.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "engine/case/dtype.hpp"

namespace attncheck {

struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class ModelArch { llama, qwen2 };
// Which channels RoPE rotates together. rotate_half (Hugging Face): channel
// c pairs with c + head_dim/2. interleaved (Meta's original, GGUF): channel
// 2i pairs with 2i + 1. A checkpoint converted between the two without
// permuting the Q/K rows is the classic "wrong RoPE pairing" bug.
enum class RopePairing { rotate_half, interleaved };

// RoPE frequency scaling, as transformers defines it (modeling_rope_utils):
//   linear: every inverse frequency divided by factor;
//   llama3: frequencies whose wavelength exceeds original_max /
//     low_freq_factor divided by factor, those below original_max /
//     high_freq_factor kept, a linear blend between;
//   yarn: a ramp between interpolated (/ factor) and kept frequencies over
//     the dims whose rotation count at original_max lies between beta_slow
//     and beta_fast, and cos/sin multiplied by attention_factor (default
//     0.1 ln(factor) + 1).
// "dynamic" (NTK) changes the frequencies with the sequence length during a
// run and is refused.
enum class RopeScalingType { none, linear, llama3, yarn };
const char* rope_scaling_name(RopeScalingType t);
std::optional<RopeScalingType> parse_rope_scaling_type(const std::string& s);

struct RopeScaling {
    RopeScalingType type = RopeScalingType::none;
    double factor = 1.0;
    double low_freq_factor = 1.0, high_freq_factor = 4.0; // llama3
    double original_max = 8192;                           // llama3, yarn: original_max_position_embeddings
    double beta_fast = 32, beta_slow = 1;                 // yarn
    double attention_factor = 0;                          // yarn; 0: 0.1 ln(factor) + 1
    // Spelled out: the CUDA half is compiled as C++17 (no defaulted ==).
    bool operator==(const RopeScaling& o) const {
        return type == o.type && factor == o.factor && low_freq_factor == o.low_freq_factor &&
               high_freq_factor == o.high_freq_factor && original_max == o.original_max && beta_fast == o.beta_fast &&
               beta_slow == o.beta_slow && attention_factor == o.attention_factor;
    }
};

const char* arch_name(ModelArch a);
const char* pairing_name(RopePairing p);
// The inverses of the two names above (nullopt for anything else).
std::optional<ModelArch> parse_arch(const std::string& s);
std::optional<RopePairing> parse_pairing(const std::string& s);

struct ModelConfig {
    ModelArch arch = ModelArch::llama;
    int vocab = 97;
    int hidden = 128;
    int layers = 2;
    int n_q_heads = 4;
    int n_kv_heads = 2;
    int head_dim = 64;
    int ffn = 256;
    double rope_theta = 10000.0;
    RopePairing rope_pairing = RopePairing::rotate_half;
    RopeScaling rope_scaling;
    double rms_eps = 1e-6;
    bool tied_embeddings = false;
    bool qkv_bias = false;
    DType dtype = DType::f32; // weights and stored activations

    int q_dim() const { return n_q_heads * head_dim; }
    int kv_dim() const { return n_kv_heads * head_dim; }
    int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
    long long parameter_count() const;
    std::string summary() const;
};

// Limits that reject absurd configs before anything is allocated; real
// models fit (Llama-3 405B: hidden 16384, ffn 53248, 126 layers, vocab
// 128256, 4.1e11 parameters). Whether the host can hold a model that passes
// is a separate question: loading reads the file (its size bounds every
// tensor), random weights allocate and fail with std::bad_alloc.
struct ModelLimits {
    static constexpr int max_vocab = 1 << 20;
    static constexpr int max_hidden = 1 << 16;
    static constexpr int max_layers = 1024;
    static constexpr int max_heads = 1024;
    static constexpr int max_head_dim = 1024;
    static constexpr int max_ffn = 1 << 18;
    static constexpr long long max_parameters = 1LL << 40;
};

// Throws ConfigError naming the first field that breaks a rule.
void validate(const ModelConfig& c);

// Presets. tiny(): the CI configuration (2 layers, hidden 128, 4 q / 2 kv
// heads of 64 -- head_dim 64 so every attention family, flash_prefill
// included, supports it -- ffn 256, vocab 97). qwen25_05b(): the shape of
// Qwen2.5-0.5B (24 layers, hidden 896, 14/2 heads of 64, ffn 4864, theta 1e6,
// tied embeddings, Q/K/V bias, vocab 151936).
ModelConfig tiny_config(ModelArch arch = ModelArch::llama, DType dtype = DType::f32);
ModelConfig qwen25_05b_config(DType dtype = DType::bf16);
// The named presets of the command line: tiny-llama, tiny-qwen2,
// qwen2.5-0.5b-shape; nullopt for another name.
inline constexpr const char* kModelPresetNames = "tiny-llama, tiny-qwen2 or qwen2.5-0.5b-shape";
std::optional<ModelConfig> preset_config(const std::string& name, DType dtype);

// RoPE scaling as transformers' rope_scaling object (what hf_config_json
// writes), and back (ConfigError naming the field).
std::string rope_scaling_json(const RopeScaling& s);
RopeScaling parse_rope_scaling_json(const std::string& json_text);

// Hugging Face config.json text -> ModelConfig (validated). `dtype` is the
// dtype the weights will be held in (the file's torch_dtype is checked for
// being a known value but the caller decides). Unknown model_type, missing
// required keys, wrong JSON types, or values outside the limits throw
// ConfigError.
ModelConfig parse_hf_config(const std::string& json_text);
// Writes the keys parse_hf_config reads (and transformers needs).
std::string hf_config_json(const ModelConfig& c);

} // namespace attncheck
