#include "properties/campaign/model_case_mutator.hpp"

#include <algorithm>

#include "kernels/flash_prefill/flash_prefill.hpp"
#include "properties/campaign/model_campaign.hpp"

namespace attncheck {

namespace {

// Widths and lengths stay at the generator's sizes: the fuzzer runs the
// CPU engine and its fp64 oracle on every input.
constexpr int kWidths[] = {8, 16, 32, 64, 128};
constexpr int kMaxLayers = 4, kMaxSteps = 12, kMaxTokens = 24;

template <class T, std::size_t N>
T any_of(Rng& r, const T (&v)[N]) {
    return v[r.below(N)];
}

std::vector<int> tokens(Rng& r, int n, int vocab) {
    std::vector<int> t(static_cast<std::size_t>(n));
    for (int& x : t) x = static_cast<int>(r.below(static_cast<std::uint64_t>(vocab)));
    return t;
}

bool one_token_chunks(const ModelStep& s) {
    return std::all_of(s.batch.begin(), s.batch.end(), [](const SeqChunk& ch) { return ch.tokens.size() == 1; });
}

// A family that runs the call: the decode families take one token per
// sequence; flash_prefill has its own head dims.
std::string family_for(const ModelStep& s, const ModelConfig& c, Rng& r) {
    std::vector<std::string> fams = {"auto", "standard_path"};
    if (kernels::flash::head_dim_supported(c.head_dim)) fams.push_back("flash_prefill");
    if (one_token_chunks(s)) fams.insert(fams.end(), {"decode", "decode_gqa", "decode_split"});
    return fams[r.below(fams.size())];
}

void mutate_config(ModelCase& mc, Rng& r) {
    ModelConfig& c = mc.config;
    switch (r.below(10)) {
        case 0: {
            const auto& heads = model_head_layouts();
            const auto [q, kv] = heads[r.below(heads.size())];
            c.n_q_heads = q;
            c.n_kv_heads = kv;
            break;
        }
        case 1: {
            const auto& dims = model_head_dims();
            c.head_dim = dims[r.below(dims.size())];
            break;
        }
        case 2:
            c.layers = std::clamp(c.layers + (r.coin(0.5) ? 1 : -1), 1, kMaxLayers);
            break;
        case 3:
            (r.coin(0.5) ? c.hidden : c.ffn) = any_of(r, kWidths);
            break;
        case 4:
            c.vocab = static_cast<int>(r.range(8, 79));
            break;
        case 5:
            c.rope_theta = r.coin(0.5) ? 500.0 : (r.coin(0.5) ? 10000.0 : 1e6);
            c.rope_pairing = r.coin(0.5) ? RopePairing::rotate_half : RopePairing::interleaved;
            break;
        case 6: {
            RopeScaling& rs = c.rope_scaling;
            const RopeScalingType types[] = {RopeScalingType::none, RopeScalingType::linear, RopeScalingType::llama3,
                                             RopeScalingType::yarn};
            rs = RopeScaling{};
            rs.type = any_of(r, types);
            if (rs.type != RopeScalingType::none) {
                const double factors[] = {2.0, 4.0, 8.0, 32.0}, originals[] = {8.0, 64.0, 4096.0};
                rs.factor = any_of(r, factors);
                rs.original_max = any_of(r, originals);
            }
            break;
        }
        case 7:
            if (r.coin(0.5))
                c.arch = c.arch == ModelArch::llama ? ModelArch::qwen2 : ModelArch::llama;
            else
                c.tied_embeddings = !c.tied_embeddings;
            c.qkv_bias = c.arch == ModelArch::qwen2 || r.coin(0.5);
            break;
        case 8: {
            const DType types[] = {DType::f32, DType::bf16, DType::f16};
            c.dtype = any_of(r, types);
            break;
        }
        default:
            c.rms_eps = r.coin(0.5) ? 1e-6 : 1e-5;
    }
}

void mutate_weights(ModelCase& mc, Rng& r) {
    RandomWeightOptions& w = mc.weights;
    switch (r.below(3)) {
        case 0:
            w.seed = 1 + r.below(1u << 30);
            break;
        case 1: {
            const double values[] = {10.0, 30.0, -20.0, 300.0};
            w.massive_channels = {static_cast<int>(r.below(static_cast<std::uint64_t>(mc.config.hidden)))};
            w.massive_value = any_of(r, values);
            break;
        }
        default:
            if (mc.config.qkv_bias) w.qk_bias_norm = r.coin(0.5) ? 5.0 : 30.0;
    }
}

void mutate_schedule(ModelCase& mc, Rng& r) {
    std::vector<ModelStep>& s = mc.schedule;
    const int V = mc.config.vocab;
    const std::size_t at = r.below(s.size());
    switch (r.below(6)) {
        case 0: // a decode step on a slot that has a prompt
            s.push_back(model_call({{0, tokens(r, 1, V)}}, "decode_split", static_cast<int>(r.range(1, 5))));
            break;
        case 1: // a prompt split into two chunks (two calls)
            if (!s[at].reset && s[at].batch.size() == 1 && s[at].batch[0].tokens.size() > 1) {
                SeqChunk& ch = s[at].batch[0];
                const auto cut = static_cast<long>(r.range(1, static_cast<long long>(ch.tokens.size()) - 1));
                ModelStep tail = model_call({{ch.seq, std::vector<int>(ch.tokens.begin() + cut, ch.tokens.end())}});
                ch.tokens.resize(static_cast<std::size_t>(cut));
                s.insert(s.begin() + static_cast<long>(at) + 1, tail);
            }
            break;
        case 2: // ragged: a new slot's prompt beside slot 0's next token
            mc.slots = std::max(mc.slots, 2);
            s.push_back(model_call({{1, tokens(r, static_cast<int>(r.range(1, 7)), V)}, {0, tokens(r, 1, V)}}));
            break;
        case 3: { // a reset, then a fresh prompt and a decode step
            s.push_back(model_reset(0));
            s.push_back(model_call({{0, tokens(r, static_cast<int>(r.range(1, 6)), V)}}));
            s.push_back(model_call({{0, tokens(r, 1, V)}}));
            break;
        }
        case 4: // another family for one call
            if (!s[at].reset) s[at].attention = family_for(s[at], mc.config, r);
            break;
        default:
            if (!s[at].reset) s[at].num_splits = static_cast<int>(r.range(1, 8));
    }
}

} // namespace

// Llama, 2 q heads over 1 kv head of 16, hidden 32, one layer, a prompt of
// three tokens and one decode step on slot 0 of two.
ModelCase smallest_model_case() {
    static const ModelCase c = model_case_from_json(R"({"attncheck_model_case": 1,
        "config": {"arch": "llama", "dtype": "fp32", "n_q_heads": 2, "n_kv_heads": 1, "head_dim": 16, "hidden": 32,
                   "layers": 1, "ffn": 32, "vocab": 16, "rope_theta": 10000.0, "rope_pairing": "rotate_half",
                   "rms_eps": 1e-06, "tied_embeddings": false, "qkv_bias": false},
        "weights": {"seed": 1, "proj_std": 0.02, "embed_std": 0.02, "norm_gain_jitter": 0.1, "bias_std": 0.02,
                    "massive_channels": [], "massive_value": 0.0, "qk_bias_norm": 0.0},
        "slots": 2,
        "schedule": [{"attention": "auto", "num_splits": 1, "call": [{"seq": 0, "tokens": [1, 2, 3]}]},
                     {"attention": "auto", "num_splits": 1, "call": [{"seq": 0, "tokens": [4]}]}]})");
    return c;
}

bool fit_model_case(ModelCase& c) {
    ModelConfig& cfg = c.config;
    std::erase_if(c.weights.massive_channels, [&](int ch) { return ch >= cfg.hidden; });
    if (c.schedule.size() > static_cast<std::size_t>(kMaxSteps)) c.schedule.resize(static_cast<std::size_t>(kMaxSteps));
    int total = 0;
    for (ModelStep& s : c.schedule) {
        if (s.reset) {
            s.reset_slot = std::min(s.reset_slot, c.slots - 1);
            continue;
        }
        for (SeqChunk& ch : s.batch) {
            for (int& t : ch.tokens) t %= cfg.vocab;
            total += static_cast<int>(ch.tokens.size());
        }
        if (s.attention == "flash_prefill" && !kernels::flash::head_dim_supported(cfg.head_dim)) s.attention = "auto";
        if (s.attention.rfind("decode", 0) == 0 && !one_token_chunks(s)) s.attention = "auto";
    }
    if (total > kMaxTokens) return false;
    try {
        validate(c);
    } catch (const std::exception&) { // ModelCaseError, ConfigError
        return false;
    }
    return true;
}

ModelCase mutate_model_case(const ModelCase& c, Rng& rng) {
    ModelCase m = c;
    const int steps = static_cast<int>(rng.range(1, 3));
    for (int i = 0, done = 0; i < 16 && done < steps; ++i) {
        ModelCase next = m;
        switch (rng.below(3)) {
            case 0:
                mutate_config(next, rng);
                break;
            case 1:
                mutate_weights(next, rng);
                break;
            default:
                mutate_schedule(next, rng);
        }
        if (fit_model_case(next)) {
            m = std::move(next);
            ++done;
        }
    }
    return m;
}

ModelCase cross_model_cases(const ModelCase& config_from, const ModelCase& schedule_from) {
    ModelCase x = config_from;
    x.schedule = schedule_from.schedule;
    x.slots = std::max(config_from.slots, schedule_from.slots);
    return fit_model_case(x) ? x : config_from;
}

} // namespace attncheck
