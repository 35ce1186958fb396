#include "properties/campaign/external_model.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/model_engine.hpp"
#include "model/safetensors_loader.hpp"

namespace attncheck {

using nlohmann::json;

ModelAdapterCapabilities parse_model_capabilities(const std::string& text) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("model adapter capabilities: " + what); };
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail(std::string("not JSON: ") + e.what());
    }
    if (!j.is_object()) fail("not a JSON object");
    if (j.value("protocol", 0) != 1) fail("protocol must be 1");
    if (j.value("kind", std::string()) != "model")
        fail("'kind' is not \"model\": an attention adapter runs without --target model");
    ModelAdapterCapabilities c;
    if (!j.contains("name") || !j.at("name").is_string() || j.at("name").get<std::string>().empty())
        fail("'name' must be a non-empty string");
    c.name = j.at("name").get<std::string>();
    auto names = [&](const char* key, bool required) {
        std::vector<std::string> v;
        if (!j.contains(key)) {
            if (required) fail(fmt::format("'{}' must list what it takes", key));
            return v;
        }
        if (!j.at(key).is_array()) fail(fmt::format("'{}' must be an array of names", key));
        for (const json& e : j.at(key)) {
            if (!e.is_string()) fail(fmt::format("'{}' must be an array of names", key));
            v.push_back(e.get<std::string>());
        }
        if (required && v.empty()) fail(fmt::format("'{}' is empty", key));
        return v;
    };
    for (const auto& a : names("archs", true)) {
        const auto arch = parse_arch(a);
        if (!arch) fail("unknown arch " + a);
        c.archs.push_back(*arch);
    }
    for (const auto& d : names("dtypes", true)) {
        const auto dt = parse_dtype(d);
        if (!dt) fail("unknown dtype " + d);
        c.dtypes.push_back(*dt);
    }
    c.rope_scalings = {RopeScalingType::none};
    for (const auto& s : names("rope_scalings", false)) {
        if (s == "none") continue;
        const auto t = parse_rope_scaling_type(s);
        if (!t) fail("unknown rope scaling " + s);
        c.rope_scalings.push_back(*t);
    }
    c.hidden_divisible_by_heads = j.value("hidden_divisible_by_heads", false);
    c.precision = j.value("precision", std::string());
    if (c.precision != "fp32")
        fail(
            "'precision' must be \"fp32\" (transformers' fp32 forward, the one model precision an adapter may "
            "declare in protocol 1)");
    for (DType d : c.dtypes)
        if (d != DType::f32) fail(fmt::format("dtype {}: a fp32 precision takes fp32 models only", dtype_name(d)));
    return c;
}

ModelAdapter::ModelAdapter(std::string command)
    : process_(std::move(command)), caps_(process_.capabilities(parse_model_capabilities)) {
    scratch_ = (std::filesystem::temp_directory_path() /
                fmt::format("attncheck-model-{}-{}", getpid(), static_cast<const void*>(this)))
                   .string();
}

ModelAdapter::~ModelAdapter() {
    std::error_code ec;
    std::filesystem::remove_all(scratch_, ec);
}

ModelCase restrict_to(const ModelAdapterCapabilities& caps, ModelCase c) {
    ModelConfig& k = c.config;
    auto has = [](const auto& v, auto x) { return std::find(v.begin(), v.end(), x) != v.end(); };
    if (!has(caps.archs, k.arch)) k.arch = caps.archs.front();
    if (!has(caps.dtypes, k.dtype)) k.dtype = caps.dtypes.front();
    if (!has(caps.rope_scalings, k.rope_scaling.type)) k.rope_scaling = RopeScaling{};
    k.rope_pairing = RopePairing::rotate_half;
    if (k.arch == ModelArch::llama) k.qkv_bias = false;
    if (!k.qkv_bias) c.weights.qk_bias_norm = 0;
    if (caps.hidden_divisible_by_heads && k.hidden % k.n_q_heads != 0) {
        const int up = (k.hidden / k.n_q_heads + 1) * k.n_q_heads;
        k.hidden = up <= ModelLimits::max_hidden ? up : k.hidden / k.n_q_heads * k.n_q_heads;
    }
    return c;
}

Frame ModelAdapter::exchange(const Frame& request, const char* what) {
    Frame rep;
    try {
        rep = process_.exchange(request);
    } catch (const std::exception& e) {
        throw ModelError(fmt::format("{} ({}): {}", caps_.name, what, e.what()));
    }
    if (rep.type() == "unsupported") throw UnsupportedModel(caps_.name + ": " + rep.meta["reason"]);
    if (rep.type() == "error") throw ModelError(fmt::format("{} ({}): {}", caps_.name, what, rep.meta["message"]));
    return rep;
}

void ModelAdapter::load(const ModelWeights& w, int slots) {
    save_hf_model(w, scratch_);
    Frame req;
    req.meta = {{"type", "load"},
                {"config", hf_config_json(w.config)},
                {"checkpoint", scratch_},
                {"slots", std::to_string(slots)}};
    const Frame rep = exchange(req, "load");
    if (rep.type() != "ok") throw ModelError(caps_.name + ": answered '" + rep.type() + "' to load, not ok");
    vocab_ = w.config.vocab;
}

std::vector<float> ModelAdapter::forward(const std::vector<SeqChunk>& batch) {
    json chunks = json::array();
    size_t rows = 0;
    for (const SeqChunk& ch : batch) {
        chunks.push_back({{"seq", ch.seq}, {"tokens", ch.tokens}});
        rows += ch.tokens.size();
    }
    Frame req;
    req.meta = {{"type", "forward"}, {"batch", chunks.dump()}};
    Frame rep = exchange(req, "forward");
    if (rep.type() != "result" || !rep.tensors.count("logits"))
        throw ModelError(caps_.name + ": answered '" + rep.type() + "' to forward, without logits");
    std::vector<float> logits = std::move(rep.tensors["logits"].data);
    if (logits.size() != rows * static_cast<size_t>(vocab_))
        throw ModelError(fmt::format("{}: {} logits for {} new tokens of a {}-token vocabulary", caps_.name,
                                     logits.size(), rows, vocab_));
    return logits;
}

void ModelAdapter::reset(int seq) {
    Frame req;
    req.meta = {{"type", "reset"}, {"seq", std::to_string(seq)}};
    const Frame rep = exchange(req, "reset");
    if (rep.type() != "ok") throw ModelError(caps_.name + ": answered '" + rep.type() + "' to reset, not ok");
}

} // namespace attncheck
