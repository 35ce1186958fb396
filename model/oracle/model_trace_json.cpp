// Model traces as JSON (the format model_oracle_check.hpp describes): read a
// trace recorded outside this program (transformers, via forward hooks) into
// a ModelTrace the divergence report can judge, and write one of ours out.
// Non-finite values travel as null (JSON has no inf/NaN).
#include <cmath>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/oracle/model_oracle_check.hpp"

namespace attncheck {

namespace {

// The per-layer stages of a trace file, in forward order (the cache is not
// part of it: k_rope and v are).
constexpr Stage kLayerStages[] = {Stage::attn_norm,  Stage::q,        Stage::k,        Stage::v,
                                  Stage::q_rope,     Stage::k_rope,   Stage::attn_out, Stage::o_proj,
                                  Stage::resid_attn, Stage::ffn_norm, Stage::gate,     Stage::up,
                                  Stage::act,        Stage::down,     Stage::resid_ffn};

} // namespace

ModelTrace trace_from_json(const ModelConfig& c, const std::string& text, const PrecisionProfile& prof,
                           std::vector<int>* tokens) {
    using nlohmann::json;
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw std::invalid_argument(std::string("trace: not valid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("tokens") || !j.at("tokens").is_array())
        throw std::invalid_argument("trace: no \"tokens\" array");
    std::vector<int> toks;
    for (const json& t : j.at("tokens")) {
        if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() >= c.vocab)
            throw std::invalid_argument(fmt::format("trace: token {} outside the vocabulary", t.dump()));
        toks.push_back(t.get<int>());
    }
    if (toks.empty()) throw std::invalid_argument("trace: no tokens");
    const int n = static_cast<int>(toks.size());
    std::vector<std::pair<int, int>> rows;
    for (int i = 0; i < n; ++i) rows.push_back({0, i});
    ModelTrace t;
    t.init(c, rows);
    auto read = [&](const json& obj, const char* name, Stage s, int layer, const std::string& where) {
        if (!obj.contains(name)) throw std::invalid_argument(fmt::format("trace: {} has no \"{}\"", where, name));
        const json& a = obj.at(name);
        const int w = stage_width(c, s);
        if (!a.is_array() || static_cast<int>(a.size()) != n)
            throw std::invalid_argument(fmt::format("trace: {} \"{}\" must be {} rows", where, name, n));
        std::vector<float>& dst = t.at(layer, s);
        for (int r = 0; r < n; ++r) {
            const json& row = a.at(static_cast<size_t>(r));
            if (!row.is_array() || static_cast<int>(row.size()) != w)
                throw std::invalid_argument(
                    fmt::format("trace: {} \"{}\" row {} must have {} values", where, name, r, w));
            for (int i = 0; i < w; ++i) {
                const json& x = row.at(static_cast<size_t>(i));
                // null stands for a non-finite value (JSON has no inf/NaN).
                dst[static_cast<size_t>(r) * w + i] =
                    x.is_number() ? x.get<float>() : std::numeric_limits<float>::quiet_NaN();
            }
        }
    };
    read(j, "embed", Stage::embed, c.layers, "top level");
    if (!j.contains("layers") || !j.at("layers").is_array() || static_cast<int>(j.at("layers").size()) != c.layers)
        throw std::invalid_argument(fmt::format("trace: \"layers\" must be an array of {} objects", c.layers));
    for (int l = 0; l < c.layers; ++l) {
        const json& L = j.at("layers").at(static_cast<size_t>(l));
        const std::string where = fmt::format("layer {}", l);
        for (Stage s : kLayerStages) read(L, stage_name(s), s, l, where);
        AttentionProblem pb;
        pb.n_q_heads = c.n_q_heads;
        pb.n_kv_heads = c.n_kv_heads;
        pb.head_dim = c.head_dim;
        pb.q_lens = {n};
        pb.kv_lens = {n};
        pb.q_start = {0};
        pb.kv_start = {0};
        pb.causal = true;
        pb.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
        pb.dtype = DType::f32;
        pb.q = t.at(l, Stage::q_rope);
        pb.k = t.at(l, Stage::k_rope);
        pb.v = t.at(l, Stage::v);
        t.attn[static_cast<size_t>(l)] = std::move(pb);
        t.attn_seq_ids[static_cast<size_t>(l)] = {0};
        t.attn_target[static_cast<size_t>(l)] = "external";
        t.attn_profile[static_cast<size_t>(l)] = prof;
    }
    read(j, "final_norm", Stage::final_norm, c.layers, "top level");
    read(j, "logits", Stage::logits, c.layers, "top level");
    if (tokens) *tokens = toks;
    return t;
}

std::string trace_to_json(const ModelConfig& c, const ModelTrace& t, const std::vector<int>& tokens) {
    using nlohmann::json;
    const int n = static_cast<int>(t.rows.size());
    auto rows = [&](int layer, Stage s) {
        const int w = stage_width(c, s);
        json a = json::array();
        for (int r = 0; r < n; ++r) {
            json row = json::array();
            for (int i = 0; i < w; ++i) {
                const float x = t.at(layer, s)[static_cast<size_t>(r) * w + i];
                row.push_back(std::isfinite(x) ? json(x) : json());
            }
            a.push_back(std::move(row));
        }
        return a;
    };
    json j;
    j["tokens"] = tokens;
    j["embed"] = rows(c.layers, Stage::embed);
    j["layers"] = json::array();
    for (int l = 0; l < c.layers; ++l) {
        json L;
        for (Stage s : kLayerStages) L[stage_name(s)] = rows(l, s);
        j["layers"].push_back(std::move(L));
    }
    j["final_norm"] = rows(c.layers, Stage::final_norm);
    j["logits"] = rows(c.layers, Stage::logits);
    return j.dump();
}

} // namespace attncheck
