// The greedy model case shrinker: its reductions, one small function each,
// listed once in kReductions (adding one is a function and a table line);
// the walk is greedy_shrink.hpp's. What it does and its limits:
// model_case_shrinker.hpp.
#include "properties/campaign/model_case_shrinker.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "kernels/flash_prefill/flash_prefill.hpp"

namespace attncheck {

namespace {

using Candidates = std::vector<ModelCase>;

int case_tokens(const ModelCase& c) {
    int n = 0;
    for (const ModelStep& s : c.schedule)
        for (const SeqChunk& ch : s.batch) n += static_cast<int>(ch.tokens.size());
    return n;
}

// A smaller configuration takes the massive channels outside hidden with
// it (validate() rejects them), and a call pinned to flash_prefill falls back
// to "auto" at a head_dim that kernel lacks, rather than being refused.
void fit_config(ModelCase& c) {
    std::erase_if(c.weights.massive_channels, [&](int ch) { return ch >= c.config.hidden; });
    for (ModelStep& s : c.schedule)
        if (s.attention == "flash_prefill" && !kernels::flash::head_dim_supported(c.config.head_dim))
            s.attention = "auto";
}

template <class F>
Candidates config_values(const ModelCase& c, const std::vector<int>& values, F set) {
    return shrink_each(c, values, [&set](ModelCase& n, int v) {
        set(n.config, v);
        fit_config(n);
    });
}

ModelCase with_steps(const ModelCase& c, const std::vector<std::size_t>& keep) {
    ModelCase n = c;
    n.schedule.clear();
    for (std::size_t i : keep) n.schedule.push_back(c.schedule[i]);
    return n;
}

// Prefixes first (steps after the one that shows the failure rarely matter;
// kept one after another they binary-search the shortest), then one step at
// a time.
Candidates drop_steps(const ModelCase& c) {
    const int n = static_cast<int>(c.schedule.size());
    Candidates out;
    std::vector<std::size_t> all;
    for (int i = 0; i < n; ++i) all.push_back(static_cast<std::size_t>(i));
    for (int len : shrink_values_below(n, 1)) out.push_back(with_steps(c, {all.begin(), all.begin() + len}));
    for (int i = 0; n > 1 && i < n; ++i) {
        std::vector<std::size_t> keep = all;
        keep.erase(keep.begin() + i);
        out.push_back(with_steps(c, keep));
    }
    return out;
}

// The case over only the slots `keep`, renumbered in that order: chunks and
// resets of the other slots go, and so do calls left empty.
std::optional<ModelCase> with_slots(const ModelCase& c, const std::vector<int>& keep) {
    auto index = [&](int slot) {
        const auto it = std::find(keep.begin(), keep.end(), slot);
        return it == keep.end() ? -1 : static_cast<int>(it - keep.begin());
    };
    ModelCase n = c;
    n.slots = static_cast<int>(keep.size());
    n.schedule.clear();
    for (ModelStep s : c.schedule) {
        if (s.reset) {
            s.reset_slot = index(s.reset_slot);
            if (s.reset_slot >= 0) n.schedule.push_back(s);
            continue;
        }
        std::erase_if(s.batch, [&](SeqChunk& ch) { return (ch.seq = index(ch.seq)) < 0; });
        if (!s.batch.empty()) n.schedule.push_back(std::move(s));
    }
    if (n.schedule.empty()) return std::nullopt;
    return n;
}

// Each slot alone first, then (from three slots) all but one.
Candidates fewer_slots(const ModelCase& c) {
    std::vector<std::vector<int>> keeps;
    for (int s = 0; c.slots > 1 && s < c.slots; ++s) keeps.push_back({s});
    for (int s = 0; c.slots > 2 && s < c.slots; ++s) {
        std::vector<int> keep;
        for (int k = 0; k < c.slots; ++k)
            if (k != s) keep.push_back(k);
        keeps.push_back(keep);
    }
    Candidates out;
    for (const auto& keep : keeps)
        if (std::optional<ModelCase> n = with_slots(c, keep)) out.push_back(std::move(*n));
    return out;
}

// One chunk of a ragged call dropped.
Candidates drop_chunk(const ModelCase& c) {
    Candidates out;
    for (std::size_t i = 0; i < c.schedule.size(); ++i)
        for (std::size_t j = 0; c.schedule[i].batch.size() > 1 && j < c.schedule[i].batch.size(); ++j) {
            ModelCase n = c;
            auto& batch = n.schedule[i].batch;
            batch.erase(batch.begin() + static_cast<std::ptrdiff_t>(j));
            out.push_back(std::move(n));
        }
    return out;
}

// A chunk cut to a prefix of itself (what came before in the slot stays).
Candidates shorter_chunks(const ModelCase& c) {
    Candidates out;
    for (std::size_t i = 0; i < c.schedule.size(); ++i)
        for (std::size_t j = 0; j < c.schedule[i].batch.size(); ++j) {
            const int len = static_cast<int>(c.schedule[i].batch[j].tokens.size());
            const Candidates cs = shrink_each(c, shrink_values_below(len, 1), [i, j](ModelCase& n, int v) {
                n.schedule[i].batch[j].tokens.resize(static_cast<std::size_t>(v));
            });
            out.insert(out.end(), cs.begin(), cs.end());
        }
    return out;
}

// Every token 0 at once, then chunk by chunk: the vocabulary can then shrink.
Candidates tokens_zero(const ModelCase& c) {
    std::vector<std::pair<std::size_t, std::size_t>> at; // (step, chunk) with a token other than 0
    for (std::size_t i = 0; i < c.schedule.size(); ++i)
        for (std::size_t j = 0; j < c.schedule[i].batch.size(); ++j) {
            const std::vector<int>& t = c.schedule[i].batch[j].tokens;
            if (std::any_of(t.begin(), t.end(), [](int x) { return x != 0; })) at.emplace_back(i, j);
        }
    auto zero = [](ModelCase& n, std::pair<std::size_t, std::size_t> p) {
        std::vector<int>& t = n.schedule[p.first].batch[p.second].tokens;
        std::fill(t.begin(), t.end(), 0);
    };
    Candidates out = shrink_one_if(at.size() > 1, c, [&](ModelCase& n) {
        for (auto p : at) zero(n, p);
    });
    const Candidates each = shrink_each(c, at, zero);
    out.insert(out.end(), each.begin(), each.end());
    return out;
}

Candidates smaller_vocab(const ModelCase& c) {
    int top = 2; // validate()'s smallest vocabulary
    for (const ModelStep& s : c.schedule)
        for (const SeqChunk& ch : s.batch)
            for (int t : ch.tokens) top = std::max(top, t + 1);
    return config_values(c, shrink_values_below(c.config.vocab, top), [](ModelConfig& m, int v) { m.vocab = v; });
}

Candidates fewer_kv_heads(const ModelCase& c) {
    const int ratio = c.config.n_q_heads / c.config.n_kv_heads;
    return config_values(c, shrink_values_below(c.config.n_kv_heads, 1), [ratio](ModelConfig& m, int kv) {
        m.n_kv_heads = kv;
        m.n_q_heads = kv * ratio;
    });
}

// Every call that differs from the default at once, then one call at a time.
template <class Differs, class Reset>
Candidates calls_to_default(const ModelCase& c, Differs differs, Reset reset) {
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < c.schedule.size(); ++i)
        if (!c.schedule[i].reset && differs(c.schedule[i])) at.push_back(i);
    Candidates out = shrink_one_if(at.size() > 1, c, [&](ModelCase& n) {
        for (std::size_t i : at) reset(n.schedule[i]);
    });
    for (std::size_t i : at) {
        ModelCase n = c;
        reset(n.schedule[i]);
        out.push_back(std::move(n));
    }
    return out;
}

// The massive activations off (channels and value), then one channel at a time.
Candidates drop_massive(const ModelCase& c) {
    const RandomWeightOptions& w = c.weights;
    Candidates out = shrink_one_if(!w.massive_channels.empty() || w.massive_value != 0, c, [](ModelCase& n) {
        n.weights.massive_channels.clear();
        n.weights.massive_value = 0;
    });
    for (std::size_t i = 0; w.massive_channels.size() > 1 && i < w.massive_channels.size(); ++i) {
        ModelCase n = c;
        n.weights.massive_channels.erase(n.weights.massive_channels.begin() + static_cast<std::ptrdiff_t>(i));
        out.push_back(std::move(n));
    }
    return out;
}

// The weights' magnitudes and seed back to RandomWeightOptions' defaults:
// all that differ at once, then each.
Candidates default_weights(const ModelCase& c) {
    static const RandomWeightOptions def;
    std::vector<double RandomWeightOptions::*> differ;
    for (auto f : {&RandomWeightOptions::proj_std, &RandomWeightOptions::embed_std,
                   &RandomWeightOptions::norm_gain_jitter, &RandomWeightOptions::bias_std})
        if (c.weights.*f != def.*f) differ.push_back(f);
    Candidates out = shrink_one_if(differ.size() > 1, c, [&](ModelCase& n) {
        for (auto f : differ) n.weights.*f = def.*f;
    });
    for (auto f : differ) {
        ModelCase n = c;
        n.weights.*f = def.*f;
        out.push_back(std::move(n));
    }
    const Candidates seed =
        shrink_one_if(c.weights.seed != def.seed, c, [](ModelCase& n) { n.weights.seed = def.seed; });
    out.insert(out.end(), seed.begin(), seed.end());
    return out;
}

// RoPE theta and the RMSNorm epsilon back to ModelConfig's defaults.
Candidates default_numerics(const ModelCase& c) {
    static const ModelConfig def;
    return shrink_one_if(c.config.rope_theta != def.rope_theta || c.config.rms_eps != def.rms_eps, c, [](ModelCase& n) {
        n.config.rope_theta = def.rope_theta;
        n.config.rms_eps = def.rms_eps;
    });
}

struct Reduction {
    const char* name;
    Candidates (*candidates)(const ModelCase&);
};

// Most drastic first: the schedule and depth (which decide the cost of every
// later run), then widths, then per-call options, outliers and numerics.
const Reduction kReductions[] = {
    {"drop_step", drop_steps},
    {"layers",
     [](const ModelCase& c) {
         return config_values(c, shrink_values_below(c.config.layers, 1), [](ModelConfig& m, int v) { m.layers = v; });
     }},
    {"slots", fewer_slots},
    {"drop_chunk", drop_chunk},
    {"chunk_tokens", shorter_chunks},
    {"tokens_zero", tokens_zero},
    {"vocab", smaller_vocab},
    {"hidden",
     [](const ModelCase& c) {
         return config_values(c, shrink_values_below(c.config.hidden, 1), [](ModelConfig& m, int v) { m.hidden = v; });
     }},
    {"ffn",
     [](const ModelCase& c) {
         return config_values(c, shrink_values_below(c.config.ffn, 1), [](ModelConfig& m, int v) { m.ffn = v; });
     }},
    {"kv_heads", fewer_kv_heads},
    {"gqa_ratio",
     [](const ModelCase& c) {
         return config_values(c, shrink_values_below(c.config.n_q_heads / c.config.n_kv_heads, 1),
                              [](ModelConfig& m, int r) { m.n_q_heads = m.n_kv_heads * r; });
     }},
    {"head_dim",
     [](const ModelCase& c) {
         return config_values(c, shrink_even_values_below(c.config.head_dim),
                              [](ModelConfig& m, int v) { m.head_dim = v; });
     }},
    {"attention_auto",
     [](const ModelCase& c) {
         return calls_to_default(
             c, [](const ModelStep& s) { return s.attention != "auto"; }, [](ModelStep& s) { s.attention = "auto"; });
     }},
    {"one_split",
     [](const ModelCase& c) {
         return calls_to_default(
             c, [](const ModelStep& s) { return s.num_splits != 1; }, [](ModelStep& s) { s.num_splits = 1; });
     }},
    {"drop_massive", drop_massive},
    {"qk_bias_norm",
     [](const ModelCase& c) {
         return shrink_one_if(c.weights.qk_bias_norm != 0, c, [](ModelCase& n) { n.weights.qk_bias_norm = 0; });
     }},
    {"qkv_bias_off",
     [](const ModelCase& c) {
         return shrink_one_if(c.config.qkv_bias, c, [](ModelCase& n) { n.config.qkv_bias = false; });
     }},
    {"rope_scaling_off",
     [](const ModelCase& c) {
         return shrink_one_if(c.config.rope_scaling.type != RopeScalingType::none, c,
                              [](ModelCase& n) { n.config.rope_scaling = RopeScaling{}; });
     }},
    {"rotate_half",
     [](const ModelCase& c) {
         return shrink_one_if(c.config.rope_pairing != RopePairing::rotate_half, c,
                              [](ModelCase& n) { n.config.rope_pairing = RopePairing::rotate_half; });
     }},
    {"default_numerics", default_numerics},
    {"default_weights", default_weights},
};

} // namespace

std::vector<std::string> model_shrink_reduction_names() {
    std::vector<std::string> out;
    for (const Reduction& r : kReductions) out.emplace_back(r.name);
    return out;
}

ModelCase shrink_model_case(const ModelCase& c, const std::function<bool(const ModelCase&)>& still_fails,
                            const ModelShrinkOptions& opt, ShrinkStats* stats) {
    ShrinkStats local;
    std::vector<ShrinkReduction<ModelCase>> table;
    for (const Reduction& r : kReductions) table.push_back({r.name, r.candidates});
    ShrinkRules<ModelCase> rules;
    rules.valid = [](const ModelCase& k) {
        try {
            validate(k);
        } catch (const std::exception&) { // ModelCaseError, ConfigError
            return false;
        }
        return true;
    };
    rules.key = model_case_to_json;
    rules.describe = [](const ModelCase& k) {
        return fmt::format("{}, {} tokens", model_case_summary(k), case_tokens(k));
    };
    rules.max_evaluations = opt.max_evaluations;
    return greedy_shrink(c, table, still_fails, rules, stats ? *stats : local);
}

ModelFailure shrink_model_failure(const ModelCase& c, Backend b, ModelMutant m, const std::string& gate,
                                  const ModelShrinkOptions& opt, ShrinkStats* stats) {
    std::optional<ModelVerdict> last; // the verdict of the last case that still failed: the one kept
    std::string seen;
    auto fails = [&](const ModelCase& k) {
        ModelVerdict v;
        try {
            v = check_model_case(k, b, m);
        } catch (const ModelError& e) { // a case the engine refuses does not fail a gate
            seen = std::string("refused by the engine: ") + e.what();
            return false;
        }
        seen = v.ok ? "every gate holds" : "gate " + v.gate + " fails instead";
        if (v.ok || v.gate != gate) return false;
        last = std::move(v);
        return true;
    };
    if (!fails(c))
        throw std::invalid_argument(fmt::format("the model case does not fail gate {} with mutant {} on {} ({})", gate,
                                                model_mutant_name(m), backend_name(b), seen));
    ShrinkStats local;
    ShrinkStats& st = stats ? *stats : local;
    ModelFailure f;
    f.shrunk = shrink_model_case(c, fails, opt, &st);
    f.verdict = *last;
    f.shrink_steps = st.accepted;
    return f;
}

} // namespace attncheck
