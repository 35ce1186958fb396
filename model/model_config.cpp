// Reading and validating decoder configs (see model_config.hpp).
#include "model/model_config.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attncheck {

const char* arch_name(ModelArch a) { return a == ModelArch::llama ? "llama" : "qwen2"; }
const char* pairing_name(RopePairing p) { return p == RopePairing::rotate_half ? "rotate_half" : "interleaved"; }

namespace {
constexpr std::pair<RopeScalingType, const char*> kRopeScalingNames[] = {{RopeScalingType::none, "default"},
                                                                         {RopeScalingType::linear, "linear"},
                                                                         {RopeScalingType::llama3, "llama3"},
                                                                         {RopeScalingType::yarn, "yarn"}};
} // namespace

const char* rope_scaling_name(RopeScalingType t) {
    for (const auto& [type, name] : kRopeScalingNames)
        if (type == t) return name;
    return "default";
}

std::optional<RopeScalingType> parse_rope_scaling_type(const std::string& s) {
    for (const auto& [type, name] : kRopeScalingNames)
        if (s == name) return type;
    return std::nullopt;
}

std::optional<ModelArch> parse_arch(const std::string& s) {
    for (ModelArch a : {ModelArch::llama, ModelArch::qwen2})
        if (s == arch_name(a)) return a;
    return std::nullopt;
}

std::optional<RopePairing> parse_pairing(const std::string& s) {
    for (RopePairing p : {RopePairing::rotate_half, RopePairing::interleaved})
        if (s == pairing_name(p)) return p;
    return std::nullopt;
}

long long ModelConfig::parameter_count() const {
    const long long h = hidden, per_layer = static_cast<long long>(h) * qkv_dim() +
                                            static_cast<long long>(q_dim()) * h + 3LL * h * ffn + 2 * h +
                                            (qkv_bias ? qkv_dim() : 0);
    return static_cast<long long>(vocab) * h * (tied_embeddings ? 1 : 2) + layers * per_layer + h;
}

std::string ModelConfig::summary() const {
    return fmt::format("{} {} layers, hidden {}, heads {}/{} x {}, ffn {}, vocab {}, theta {:g}, {}, eps {:g}{}{}, {}",
                       arch_name(arch), layers, hidden, n_q_heads, n_kv_heads, head_dim, ffn, vocab, rope_theta,
                       pairing_name(rope_pairing), rms_eps, tied_embeddings ? ", tied" : "",
                       qkv_bias ? ", qkv bias" : "", dtype_name(dtype));
}

void validate(const ModelConfig& c) {
    auto range = [](const char* field, long long v, long long lo, long long hi) {
        if (v < lo || v > hi)
            throw ConfigError(fmt::format("model config: {} = {} outside [{}, {}]", field, v, lo, hi));
    };
    range("vocab_size", c.vocab, 2, ModelLimits::max_vocab);
    range("hidden_size", c.hidden, 1, ModelLimits::max_hidden);
    range("num_hidden_layers", c.layers, 1, ModelLimits::max_layers);
    range("num_attention_heads", c.n_q_heads, 1, ModelLimits::max_heads);
    range("num_key_value_heads", c.n_kv_heads, 1, ModelLimits::max_heads);
    range("head_dim", c.head_dim, 2, ModelLimits::max_head_dim);
    range("intermediate_size", c.ffn, 1, ModelLimits::max_ffn);
    if (c.head_dim % 2 != 0)
        throw ConfigError(
            fmt::format("model config: head_dim = {} must be even (RoPE rotates channel pairs)", c.head_dim));
    if (c.n_q_heads % c.n_kv_heads != 0)
        throw ConfigError(
            fmt::format("model config: num_attention_heads = {} is not a multiple of num_key_value_heads = {}",
                        c.n_q_heads, c.n_kv_heads));
    if (!std::isfinite(c.rope_theta) || c.rope_theta <= 1.0 || c.rope_theta > 1e12)
        throw ConfigError(fmt::format("model config: rope_theta = {} outside (1, 1e12]", c.rope_theta));
    if (!std::isfinite(c.rms_eps) || c.rms_eps <= 0.0 || c.rms_eps > 1e-1)
        throw ConfigError(fmt::format("model config: rms_norm_eps = {} outside (0, 0.1]", c.rms_eps));
    const RopeScaling& rs = c.rope_scaling;
    if (rs.type != RopeScalingType::none) {
        auto in = [&](const char* field, double v, double lo, double hi) {
            if (!(std::isfinite(v) && v >= lo && v <= hi))
                throw ConfigError(fmt::format("model config: rope_scaling.{} = {} outside [{}, {}]", field, v, lo, hi));
        };
        in("factor", rs.factor, 1.0, 1e4);
        in("original_max_position_embeddings", rs.original_max, 1.0, 1e9);
        if (rs.type == RopeScalingType::llama3) {
            in("low_freq_factor", rs.low_freq_factor, 1e-6, 1e6);
            in("high_freq_factor", rs.high_freq_factor, 1e-6, 1e6);
            if (!(rs.high_freq_factor > rs.low_freq_factor))
                throw ConfigError("model config: rope_scaling.high_freq_factor must exceed low_freq_factor");
        }
        if (rs.type == RopeScalingType::yarn) {
            in("beta_fast", rs.beta_fast, 1e-6, 1e6);
            in("beta_slow", rs.beta_slow, 1e-6, 1e6);
            in("attention_factor", rs.attention_factor, 0.0, 100.0);
        }
    }
    if (c.parameter_count() > ModelLimits::max_parameters)
        throw ConfigError(fmt::format("model config: {} parameters, over the limit of {}", c.parameter_count(),
                                      ModelLimits::max_parameters));
}

ModelConfig tiny_config(ModelArch arch, DType dtype) {
    ModelConfig c;
    c.arch = arch;
    c.dtype = dtype;
    c.qkv_bias = arch == ModelArch::qwen2;
    c.tied_embeddings = arch == ModelArch::qwen2;
    c.rope_theta = arch == ModelArch::qwen2 ? 1e6 : 10000.0;
    validate(c);
    return c;
}

ModelConfig qwen25_05b_config(DType dtype) {
    ModelConfig c;
    c.arch = ModelArch::qwen2;
    c.vocab = 151936;
    c.hidden = 896;
    c.layers = 24;
    c.n_q_heads = 14;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.ffn = 4864;
    c.rope_theta = 1e6;
    c.rms_eps = 1e-6;
    c.tied_embeddings = true;
    c.qkv_bias = true;
    c.dtype = dtype;
    validate(c);
    return c;
}

std::optional<ModelConfig> preset_config(const std::string& name, DType dtype) {
    if (name == "tiny-llama") return tiny_config(ModelArch::llama, dtype);
    if (name == "tiny-qwen2") return tiny_config(ModelArch::qwen2, dtype);
    if (name == "qwen2.5-0.5b-shape") return qwen25_05b_config(dtype);
    return std::nullopt;
}

namespace {

using nlohmann::json;

// Integers arrive as JSON numbers; a float, a string, a bool or a value that
// does not fit an int is an error, not a conversion.
int get_int(const json& j, const char* key, std::optional<int> dflt = std::nullopt) {
    if (!j.contains(key)) {
        if (dflt) return *dflt;
        throw ConfigError(fmt::format("config.json: required key \"{}\" missing", key));
    }
    const json& v = j.at(key);
    if (!v.is_number_integer())
        throw ConfigError(fmt::format("config.json: \"{}\" must be an integer (got {})", key, v.dump()));
    const long long x = v.is_number_unsigned()
                            ? static_cast<long long>(std::min<std::uint64_t>(v.get<std::uint64_t>(), 1ULL << 62))
                            : v.get<long long>();
    if (x < -(1LL << 31) || x > (1LL << 31) - 1)
        throw ConfigError(fmt::format("config.json: \"{}\" = {} does not fit a 32-bit integer", key, x));
    return static_cast<int>(x);
}

double get_num(const json& j, const char* key, double dflt) {
    if (!j.contains(key)) return dflt;
    const json& v = j.at(key);
    if (!v.is_number()) throw ConfigError(fmt::format("config.json: \"{}\" must be a number (got {})", key, v.dump()));
    return v.get<double>();
}

bool get_bool(const json& j, const char* key, bool dflt) {
    if (!j.contains(key) || j.at(key).is_null()) return dflt;
    const json& v = j.at(key);
    if (!v.is_boolean())
        throw ConfigError(fmt::format("config.json: \"{}\" must be true or false (got {})", key, v.dump()));
    return v.get<bool>();
}

// RoPE scaling from transformers' "rope_scaling" (4.x) or "rope_parameters"
// (5.x) object: the type under "rope_type" (or the older "type") and its
// parameters; original_max_position_embeddings falls back to the config's
// max_position_embeddings, as transformers' does.
RopeScaling read_rope_scaling(const json& rs, const json& config, const char* where) {
    if (!rs.is_object()) throw ConfigError(fmt::format("config.json: {} must be an object", where));
    const char* type_key = rs.contains("rope_type") ? "rope_type" : rs.contains("type") ? "type" : nullptr;
    std::string type = "default";
    if (type_key) {
        if (!rs.at(type_key).is_string())
            throw ConfigError(fmt::format("config.json: {}.{} must be a string", where, type_key));
        type = rs.at(type_key).get<std::string>();
    }
    if (type == "dynamic")
        throw ConfigError(
            fmt::format("config.json: {} dynamic (NTK) scaling is not supported: its frequencies change "
                        "with the sequence length during a run",
                        where));
    const auto t = parse_rope_scaling_type(type);
    if (!t)
        throw ConfigError(
            fmt::format("config.json: {} type \"{}\" not supported (default, linear, llama3, yarn)", where, type));
    RopeScaling s;
    s.type = *t;
    if (s.type == RopeScalingType::none) return s;
    auto required = [&](const char* key) {
        if (!rs.contains(key) || rs.at(key).is_null())
            throw ConfigError(fmt::format("config.json: {} {} needs \"{}\"", where, type, key));
        return get_num(rs, key, 0.0);
    };
    s.factor = required("factor");
    s.original_max =
        get_num(rs, "original_max_position_embeddings", get_num(config, "max_position_embeddings", s.original_max));
    if (s.type == RopeScalingType::llama3) {
        s.low_freq_factor = required("low_freq_factor");
        s.high_freq_factor = required("high_freq_factor");
        s.original_max = required("original_max_position_embeddings");
    }
    if (s.type == RopeScalingType::yarn) {
        for (const char* k : {"mscale", "mscale_all_dim"})
            if (rs.contains(k) && !rs.at(k).is_null())
                throw ConfigError(fmt::format("config.json: {} yarn with {} is not supported", where, k));
        if (rs.contains("truncate") && !get_bool(rs, "truncate", true))
            throw ConfigError(fmt::format("config.json: {} yarn with truncate = false is not supported", where));
        s.beta_fast = get_num(rs, "beta_fast", s.beta_fast);
        s.beta_slow = get_num(rs, "beta_slow", s.beta_slow);
        if (rs.contains("attention_factor") && !rs.at("attention_factor").is_null())
            s.attention_factor = get_num(rs, "attention_factor", 0.0);
    }
    return s;
}

// JSON text, or ConfigError naming `what`.
json parse_json(const std::string& text, const char* what) {
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw ConfigError(std::string(what) + ": not valid JSON: " + e.what());
    }
}

} // namespace

ModelConfig parse_hf_config(const std::string& text) {
    const json j = parse_json(text, "config.json");
    if (!j.is_object()) throw ConfigError("config.json: top level must be a JSON object");
    ModelConfig c;
    if (!j.contains("model_type") || !j.at("model_type").is_string())
        throw ConfigError("config.json: required string \"model_type\" missing");
    const std::string mt = j.at("model_type").get<std::string>();
    const auto arch = parse_arch(mt);
    if (!arch) throw ConfigError(fmt::format("config.json: model_type \"{}\" not supported (llama, qwen2)", mt));
    c.arch = *arch;
    c.vocab = get_int(j, "vocab_size");
    c.hidden = get_int(j, "hidden_size");
    c.layers = get_int(j, "num_hidden_layers");
    c.n_q_heads = get_int(j, "num_attention_heads");
    c.n_kv_heads = get_int(j, "num_key_value_heads", c.n_q_heads);
    c.ffn = get_int(j, "intermediate_size");
    if (c.n_q_heads < 1)
        throw ConfigError(fmt::format("config.json: num_attention_heads = {} must be >= 1", c.n_q_heads));
    // Llama configs may omit head_dim (then hidden / heads); transformers
    // writes null for "derive it".
    if (j.contains("head_dim") && !j.at("head_dim").is_null())
        c.head_dim = get_int(j, "head_dim");
    else {
        if (c.hidden % c.n_q_heads != 0)
            throw ConfigError(fmt::format("config.json: no head_dim and hidden_size {} not divisible by {} heads",
                                          c.hidden, c.n_q_heads));
        c.head_dim = c.hidden / c.n_q_heads;
    }
    c.rope_theta = get_num(j, "rope_theta", 10000.0);
    // transformers 5 may move theta into rope_parameters.
    if (j.contains("rope_parameters") && j.at("rope_parameters").is_object()) {
        const json& rp = j.at("rope_parameters");
        c.rope_theta = get_num(rp, "rope_theta", c.rope_theta);
        c.rope_scaling = read_rope_scaling(rp, j, "rope_parameters");
    }
    if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null())
        c.rope_scaling = read_rope_scaling(j.at("rope_scaling"), j, "rope_scaling");
    c.rms_eps = get_num(j, "rms_norm_eps", 1e-6);
    c.tied_embeddings = get_bool(j, "tie_word_embeddings", c.arch == ModelArch::qwen2);
    c.qkv_bias = c.arch == ModelArch::qwen2;
    // Llama's attention_bias also puts a bias on o_proj, which this model
    // does not have: refuse rather than silently drop it.
    if (c.arch == ModelArch::llama && get_bool(j, "attention_bias", false))
        throw ConfigError("config.json: llama attention_bias = true (biased o_proj) is not supported");
    if (get_bool(j, "mlp_bias", false)) throw ConfigError("config.json: mlp_bias = true is not supported");
    if (j.contains("hidden_act") && j.at("hidden_act") != "silu")
        throw ConfigError(
            fmt::format("config.json: hidden_act {} not supported (silu only)", j.at("hidden_act").dump()));
    if (get_bool(j, "use_sliding_window", false))
        throw ConfigError("config.json: use_sliding_window = true is not supported");
    c.dtype = DType::f32;
    if (j.contains("torch_dtype") || j.contains("dtype")) {
        const json& d = j.contains("dtype") ? j.at("dtype") : j.at("torch_dtype");
        if (!d.is_null()) {
            if (!d.is_string()) throw ConfigError("config.json: torch_dtype must be a string");
            const std::string s = d.get<std::string>();
            if (s == "float32")
                c.dtype = DType::f32;
            else if (s == "float16")
                c.dtype = DType::f16;
            else if (s == "bfloat16")
                c.dtype = DType::bf16;
            else
                throw ConfigError(fmt::format("config.json: torch_dtype \"{}\" not supported", s));
        }
    }
    validate(c);
    return c;
}

// A position count is an integer in a Hugging Face config (transformers
// builds ranges from max_position_embeddings); a fractional one, which our
// own format allows, stays a number so it round-trips exactly.
static nlohmann::ordered_json position_count(double v) {
    if (v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<long long>(v);
    return v;
}

std::string rope_scaling_json(const RopeScaling& s) {
    nlohmann::ordered_json r;
    r["rope_type"] = rope_scaling_name(s.type);
    if (s.type == RopeScalingType::none) return r.dump();
    r["factor"] = s.factor;
    r["original_max_position_embeddings"] = position_count(s.original_max);
    if (s.type == RopeScalingType::llama3) {
        r["low_freq_factor"] = s.low_freq_factor;
        r["high_freq_factor"] = s.high_freq_factor;
    }
    if (s.type == RopeScalingType::yarn) {
        r["beta_fast"] = s.beta_fast;
        r["beta_slow"] = s.beta_slow;
        if (s.attention_factor > 0) r["attention_factor"] = s.attention_factor;
    }
    return r.dump();
}

RopeScaling parse_rope_scaling_json(const std::string& text) {
    return read_rope_scaling(parse_json(text, "rope_scaling"), json::object(), "rope_scaling");
}

std::string hf_config_json(const ModelConfig& c) {
    if (c.arch == ModelArch::llama && c.qkv_bias)
        throw ConfigError(
            "hf config: a Llama with Q/K/V biases has no Hugging Face form (attention_bias also biases o_proj)");
    if (c.rope_pairing != RopePairing::rotate_half)
        throw ConfigError(
            "hf config: Hugging Face checkpoints use rotate_half RoPE; interleaved has no config.json form");
    nlohmann::ordered_json j;
    j["architectures"] = {c.arch == ModelArch::llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"};
    j["model_type"] = arch_name(c.arch);
    j["vocab_size"] = c.vocab;
    j["hidden_size"] = c.hidden;
    j["num_hidden_layers"] = c.layers;
    j["num_attention_heads"] = c.n_q_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["intermediate_size"] = c.ffn;
    j["rope_theta"] = c.rope_theta;
    if (c.rope_scaling.type != RopeScalingType::none) {
        j["rope_scaling"] = nlohmann::ordered_json::parse(rope_scaling_json(c.rope_scaling));
        j["max_position_embeddings"] = position_count(c.rope_scaling.original_max);
    }
    j["rms_norm_eps"] = c.rms_eps;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["hidden_act"] = "silu";
    if (c.arch == ModelArch::llama) j["attention_bias"] = false;
    j["torch_dtype"] = c.dtype == DType::f32 ? "float32" : c.dtype == DType::f16 ? "float16" : "bfloat16";
    return j.dump(2);
}

} // namespace attncheck
