#include "model/model_case.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/registry.hpp"

namespace attncheck {

using nlohmann::json;

namespace {

constexpr int kMaxSlots = 16, kMaxSteps = 64, kMaxChunk = 256, kMaxSplits = 64;

// The plain fields of a model case, written once for writing and reading.
template <class S, class T>
struct Field {
    const char* key;
    T S::*member;
};
constexpr Field<ModelConfig, int> kConfigInts[] = {{"vocab", &ModelConfig::vocab},
                                                   {"hidden", &ModelConfig::hidden},
                                                   {"layers", &ModelConfig::layers},
                                                   {"n_q_heads", &ModelConfig::n_q_heads},
                                                   {"n_kv_heads", &ModelConfig::n_kv_heads},
                                                   {"head_dim", &ModelConfig::head_dim},
                                                   {"ffn", &ModelConfig::ffn}};
constexpr Field<ModelConfig, double> kConfigDoubles[] = {{"rope_theta", &ModelConfig::rope_theta},
                                                         {"rms_eps", &ModelConfig::rms_eps}};
constexpr Field<ModelConfig, bool> kConfigBools[] = {{"tied_embeddings", &ModelConfig::tied_embeddings},
                                                     {"qkv_bias", &ModelConfig::qkv_bias}};
// Weight magnitudes; each must be in [0, 10].
constexpr Field<RandomWeightOptions, double> kWeightStds[] = {
    {"proj_std", &RandomWeightOptions::proj_std},
    {"embed_std", &RandomWeightOptions::embed_std},
    {"norm_gain_jitter", &RandomWeightOptions::norm_gain_jitter},
    {"bias_std", &RandomWeightOptions::bias_std}};

[[noreturn]] void fail(const std::string& what) { throw ModelCaseError("model case: " + what); }

} // namespace

void validate(const ModelCase& c) {
    validate(c.config);
    const RandomWeightOptions& w = c.weights;
    for (const auto& [name, v] : {std::pair<const char*, double>{"proj_std", w.proj_std},
                                  {"embed_std", w.embed_std},
                                  {"norm_gain_jitter", w.norm_gain_jitter},
                                  {"bias_std", w.bias_std}})
        if (!(std::isfinite(v) && v >= 0 && v <= 10))
            fail(fmt::format("weights.{} must be in [0, 10] (got {})", name, v));
    if (!(std::isfinite(w.massive_value) && std::fabs(w.massive_value) <= 1e4))
        fail("weights.massive_value must be finite and at most 1e4 in magnitude");
    if (!(std::isfinite(w.qk_bias_norm) && w.qk_bias_norm >= 0 && w.qk_bias_norm <= 1e4))
        fail("weights.qk_bias_norm must be in [0, 1e4]");
    for (int ch : w.massive_channels)
        if (ch < 0 || ch >= c.config.hidden)
            fail(fmt::format("weights.massive_channels: {} outside [0, hidden = {})", ch, c.config.hidden));
    if (c.slots < 1 || c.slots > kMaxSlots) fail(fmt::format("slots must be in [1, {}] (got {})", kMaxSlots, c.slots));
    if (c.schedule.empty() || c.schedule.size() > static_cast<size_t>(kMaxSteps))
        fail(fmt::format("schedule must have 1 to {} steps (has {})", kMaxSteps, c.schedule.size()));
    const std::vector<std::string> families = family_names();
    for (size_t i = 0; i < c.schedule.size(); ++i) {
        const ModelStep& s = c.schedule[i];
        const std::string at = fmt::format("schedule[{}]", i);
        if (s.reset) {
            if (s.reset_slot < 0 || s.reset_slot >= c.slots)
                fail(fmt::format("{}: reset of slot {} outside [0, {})", at, s.reset_slot, c.slots));
            continue;
        }
        if (s.batch.empty()) fail(at + ": a call needs at least one chunk");
        std::set<int> seen;
        for (const SeqChunk& ch : s.batch) {
            if (ch.seq < 0 || ch.seq >= c.slots) fail(fmt::format("{}: slot {} outside [0, {})", at, ch.seq, c.slots));
            if (!seen.insert(ch.seq).second) fail(fmt::format("{}: slot {} appears twice", at, ch.seq));
            if (ch.tokens.empty() || ch.tokens.size() > static_cast<size_t>(kMaxChunk))
                fail(fmt::format("{}: a chunk has 1 to {} tokens (slot {} has {})", at, kMaxChunk, ch.seq,
                                 ch.tokens.size()));
            for (int t : ch.tokens)
                if (t < 0 || t >= c.config.vocab)
                    fail(fmt::format("{}: token {} outside the vocabulary [0, {})", at, t, c.config.vocab));
        }
        if (s.attention != "auto" && std::find(families.begin(), families.end(), s.attention) == families.end())
            fail(fmt::format("{}: unknown attention family \"{}\"", at, s.attention));
        if (s.num_splits < 1 || s.num_splits > kMaxSplits)
            fail(fmt::format("{}: num_splits must be in [1, {}] (got {})", at, kMaxSplits, s.num_splits));
    }
}

ModelStep model_call(std::vector<SeqChunk> batch, std::string attention, int splits) {
    ModelStep s;
    s.batch = std::move(batch);
    s.attention = std::move(attention);
    s.num_splits = splits;
    return s;
}

ModelStep model_reset(int slot) {
    ModelStep s;
    s.reset = true;
    s.reset_slot = slot;
    return s;
}

std::string model_case_to_json(const ModelCase& c) {
    const ModelConfig& m = c.config;
    json cfg = {
        {"arch", arch_name(m.arch)}, {"rope_pairing", pairing_name(m.rope_pairing)}, {"dtype", dtype_name(m.dtype)}};
    for (const auto& f : kConfigInts) cfg[f.key] = m.*f.member;
    for (const auto& f : kConfigDoubles) cfg[f.key] = m.*f.member;
    for (const auto& f : kConfigBools) cfg[f.key] = m.*f.member;
    const RandomWeightOptions& w = c.weights;
    json wj = {{"seed", w.seed},
               {"massive_channels", w.massive_channels},
               {"massive_value", w.massive_value},
               {"qk_bias_norm", w.qk_bias_norm}};
    for (const auto& f : kWeightStds) wj[f.key] = w.*f.member;
    if (m.rope_scaling.type != RopeScalingType::none)
        cfg["rope_scaling"] = json::parse(rope_scaling_json(m.rope_scaling));
    json sched = json::array();
    for (const ModelStep& s : c.schedule) {
        if (s.reset) {
            sched.push_back({{"reset", s.reset_slot}});
            continue;
        }
        json call = json::array();
        for (const SeqChunk& ch : s.batch) call.push_back({{"seq", ch.seq}, {"tokens", ch.tokens}});
        sched.push_back({{"call", call}, {"attention", s.attention}, {"num_splits", s.num_splits}});
    }
    return json{{"attncheck_model_case", 1}, {"config", cfg}, {"weights", wj}, {"slots", c.slots}, {"schedule", sched}}
        .dump(1);
}

bool looks_like_model_case(const std::string& text) {
    try {
        const json j = json::parse(text);
        return j.is_object() && j.contains("attncheck_model_case");
    } catch (const json::exception&) {
        return false;
    }
}

namespace {

// Checked readers: a wrong type or an integer that does not fit is the
// field's error, never a silent conversion (a float to int that does not fit
// is undefined behaviour).
int int_of(const json& v, const std::string& what) {
    if (!v.is_number_integer()) fail(what + " must be an integer");
    const long long x =
        v.is_number_unsigned() && v.get<unsigned long long>() > (1ULL << 62) ? (1LL << 62) : v.get<long long>();
    if (x < -(1LL << 31) || x >= (1LL << 31)) fail(what + " does not fit a 32-bit integer");
    return static_cast<int>(x);
}

const json& array_at(const json& j, const char* key, size_t most, const std::string& what) {
    const json& a = j.at(key);
    if (!a.is_array()) fail(what + " must be an array");
    if (a.size() > most) fail(fmt::format("{} has {} entries, at most {}", what, a.size(), most));
    return a;
}

std::vector<int> ints_of(const json& a, const std::string& what) {
    std::vector<int> v;
    for (size_t i = 0; i < a.size(); ++i) v.push_back(int_of(a[i], fmt::format("{}[{}]", what, i)));
    return v;
}

} // namespace

ModelCase model_case_from_json(const std::string& text) {
    ModelCase c;
    try {
        const json j = json::parse(text);
        if (!j.is_object() || j.value("attncheck_model_case", 0) != 1)
            fail("not a model case (\"attncheck_model_case\": 1 missing)");
        const json& cf = j.at("config");
        ModelConfig& m = c.config;
        const std::string arch = cf.at("arch").get<std::string>();
        const auto a = parse_arch(arch);
        if (!a) fail("config.arch: expected llama or qwen2 (got \"" + arch + "\")");
        m.arch = *a;
        for (const auto& f : kConfigInts) m.*f.member = int_of(cf.at(f.key), std::string("config.") + f.key);
        for (const auto& f : kConfigDoubles) m.*f.member = cf.at(f.key).get<double>();
        for (const auto& f : kConfigBools) m.*f.member = cf.at(f.key).get<bool>();
        const std::string pairing = cf.at("rope_pairing").get<std::string>();
        const auto pr = parse_pairing(pairing);
        if (!pr) fail("config.rope_pairing: unknown \"" + pairing + "\"");
        m.rope_pairing = *pr;
        if (cf.contains("rope_scaling")) m.rope_scaling = parse_rope_scaling_json(cf.at("rope_scaling").dump());
        const auto dt = parse_dtype(cf.at("dtype").get<std::string>());
        if (!dt) fail("config.dtype: expected fp32, fp16 or bf16");
        m.dtype = *dt;
        const json& wj = j.at("weights");
        RandomWeightOptions& w = c.weights;
        if (!wj.at("seed").is_number_unsigned()) fail("weights.seed must be a non-negative integer");
        w.seed = wj.at("seed").get<std::uint64_t>();
        for (const auto& f : kWeightStds) w.*f.member = wj.value(f.key, w.*f.member);
        if (wj.contains("massive_channels"))
            w.massive_channels =
                ints_of(array_at(wj, "massive_channels", 1024, "weights.massive_channels"), "weights.massive_channels");
        w.massive_value = wj.value("massive_value", 0.0);
        w.qk_bias_norm = wj.value("qk_bias_norm", 0.0);
        c.slots = int_of(j.at("slots"), "slots");
        const json& sched = array_at(j, "schedule", kMaxSteps, "schedule");
        for (size_t i = 0; i < sched.size(); ++i) {
            const json& s = sched[i];
            const std::string at = fmt::format("schedule[{}]", i);
            ModelStep st;
            if (s.contains("reset")) {
                st.reset = true;
                st.reset_slot = int_of(s.at("reset"), at + ".reset");
            } else {
                const json& call = array_at(s, "call", kMaxSlots, at + ".call");
                for (const json& ch : call)
                    st.batch.push_back({int_of(ch.at("seq"), at + ".seq"),
                                        ints_of(array_at(ch, "tokens", kMaxChunk, at + ".tokens"), at + ".tokens")});
                st.attention = s.value("attention", std::string("auto"));
                st.num_splits = s.contains("num_splits") ? int_of(s.at("num_splits"), at + ".num_splits") : 1;
            }
            c.schedule.push_back(std::move(st));
        }
    } catch (const json::exception& e) {
        fail(std::string("malformed JSON or a field of the wrong type: ") + e.what());
    }
    validate(c);
    return c;
}

std::string model_case_summary(const ModelCase& c) {
    const ModelConfig& m = c.config;
    return fmt::format("{} {}L h{} {}/{}x{} ffn{} {}{}{}, {} steps over {} slot(s)", arch_name(m.arch), m.layers,
                       m.hidden, m.n_q_heads, m.n_kv_heads, m.head_dim, m.ffn, dtype_name(m.dtype),
                       m.rope_pairing == RopePairing::interleaved ? " interleaved" : "",
                       m.rope_scaling.type == RopeScalingType::none
                           ? std::string()
                           : fmt::format(" rope {} x{}", rope_scaling_name(m.rope_scaling.type), m.rope_scaling.factor),
                       c.schedule.size(), c.slots);
}

} // namespace attncheck
