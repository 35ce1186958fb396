// attncheck model-* subcommands:
//
//   model-logits --model DIR --tokens 1,2,3 [--backend cpu|cuda] [--attention F] --out FILE
//       run the engine on a Hugging Face checkpoint, check it stage by stage
//       against the fp64 oracle, and write engine/oracle logits, bounds and
//       per-layer hidden states as JSON (ci/transformers_crosscheck.py reads it)
//   model-check [--model DIR | --preset NAME] [--dtype D] [--seed S] [--prompt N] [--decode N]
//               [--backend cpu|cuda] [--mutant M]
//       prefill + decode steps, each checked against the oracle; prints the
//       per-layer divergence report
//   model-check-trace --model DIR --trace FILE
//       check a trace recorded by another implementation (transformers'
//       forward hooks, see ci/transformers_crosscheck.py) stage by stage
//       against the fp64 oracle under the transformers fp32 precision
//   model-save --preset NAME [--dtype D] [--seed S] [--shard-bytes N] --out DIR
//       write random weights as config.json + model.safetensors
//
// Exit codes: 0 all good, 1 a check failed, 2 bad input.
#include "app/commands.hpp"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/case/rng.hpp"
#include "model/model_session.hpp"
#include "model/oracle/model_oracle_check.hpp"
#include "model/safetensors_loader.hpp"

namespace attncheck {

namespace {

struct Opts {
    std::string trace, model, preset = "tiny-llama", dtype = "fp32", backend = "cpu", attention = "auto", out, tokens,
                              mutant = "none";
    std::uint64_t seed = 1;
    int prompt = 8, decode = 4, splits = 1;
    unsigned long long shard_bytes = 0; // model-save: 0 writes one model.safetensors
};

struct BadInput : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::vector<int> parse_tokens(const std::string& s) {
    std::vector<int> t;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            size_t used = 0;
            const long v = std::stol(item, &used);
            if (used != item.size() || v < 0 || v > (1L << 30)) throw std::invalid_argument("");
            t.push_back(static_cast<int>(v));
        } catch (const std::exception&) {
            throw BadInput(fmt::format("--tokens: \"{}\" is not a non-negative integer", item));
        }
    }
    if (t.empty()) throw BadInput("--tokens: no tokens");
    return t;
}

DType parse_dt(const std::string& s) {
    auto d = parse_dtype(s);
    if (!d) throw BadInput(fmt::format("--dtype {}: expected fp32, fp16 or bf16", s));
    return *d;
}

Backend parse_backend(const std::string& s) {
    if (s == "cpu") return Backend::cpu;
    if (s == "cuda") return Backend::cuda;
    throw BadInput(fmt::format("--backend {}: expected cpu or cuda", s));
}

ModelWeights preset_weights(const Opts& o) {
    const std::optional<ModelConfig> c = preset_config(o.preset, parse_dt(o.dtype));
    if (!c) throw BadInput(fmt::format("--preset {}: expected {}", o.preset, kModelPresetNames));
    RandomWeightOptions r;
    r.seed = o.seed;
    return random_weights(*c, r);
}

std::unique_ptr<ModelEngine> make_engine(const ModelWeights& w, Backend b, int slots, ModelMutant m) {
    try {
        return make_model_engine(w, b, slots, m);
    } catch (const ModelError& e) {
        throw BadInput(std::string("--backend: ") + e.what());
    }
}

nlohmann::json finite_or_null(const std::vector<double>& v, size_t from, size_t n) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = from; i < from + n; ++i) a.push_back(std::isfinite(v[i]) ? nlohmann::json(v[i]) : nlohmann::json());
    return a;
}
nlohmann::json finite_or_null(const std::vector<float>& v, size_t from, size_t n) {
    nlohmann::json a = nlohmann::json::array();
    for (size_t i = from; i < from + n; ++i)
        a.push_back(std::isfinite(v[i]) ? nlohmann::json(static_cast<double>(v[i])) : nlohmann::json());
    return a;
}

int cmd_logits(const Opts& o) {
    if (o.model.empty() || o.out.empty() || o.tokens.empty())
        throw BadInput("model-logits needs --model, --tokens and --out");
    const ModelWeights w = load_hf_model(o.model);
    const ModelConfig& c = w.config;
    const std::vector<int> toks = parse_tokens(o.tokens);
    for (int t : toks)
        if (t >= c.vocab) throw BadInput(fmt::format("--tokens: {} outside the vocabulary [0, {})", t, c.vocab));
    const Backend b = parse_backend(o.backend);
    auto e = make_engine(w, b, 1, ModelMutant::none);
    ForwardOptions fo;
    fo.attention = o.attention;
    fo.trace = true;
    StepOutput out = e->forward({{0, toks}}, fo);
    const OracleTrace orc = model_oracle_forward(w, toks);
    const ModelPrecision prec = model_precision(c, b);
    DivergenceReport rep = check_forward(w, *out.trace, {{0, &orc}}, prec);
    const OracleTrace apr = apriori_bounds(w, orc, transformers_fp32_precision(c));
    const size_t n = toks.size(), V = static_cast<size_t>(c.vocab), H = static_cast<size_t>(c.hidden);
    nlohmann::json j;
    j["config"] = c.summary();
    j["engine"] = e->name();
    j["attention"] = out.attention;
    j["tokens"] = toks;
    j["check_ok"] = rep.ok;
    j["check_summary"] = rep.summary();
    for (const char* k : {"engine_logits", "oracle_logits", "engine_bound", "apriori_fp32_bound"})
        j[k] = nlohmann::json::array();
    for (size_t r = 0; r < n; ++r) {
        j["engine_logits"].push_back(finite_or_null(out.logits, r * V, V));
        j["oracle_logits"].push_back(finite_or_null(orc.at(c.layers, Stage::logits), r * V, V));
        j["engine_bound"].push_back(finite_or_null(rep.bound(c.layers, Stage::logits), r * V, V));
        j["apriori_fp32_bound"].push_back(finite_or_null(apr.at(c.layers, Stage::logits), r * V, V));
    }
    // Residual stream after each layer (the last one through the final norm,
    // as transformers' hidden_states reports it): [layer][token][hidden].
    j["engine_hidden"] = nlohmann::json::array();
    j["oracle_hidden"] = nlohmann::json::array();
    for (int l = 0; l < c.layers; ++l) {
        const bool last = l == c.layers - 1;
        const auto& ev = last ? out.trace->at(c.layers, Stage::final_norm) : out.trace->at(l, Stage::resid_ffn);
        const auto& ov = last ? orc.at(c.layers, Stage::final_norm) : orc.at(l, Stage::resid_ffn);
        nlohmann::json el = nlohmann::json::array(), ol = nlohmann::json::array();
        for (size_t r = 0; r < n; ++r) {
            el.push_back(finite_or_null(ev, r * H, H));
            ol.push_back(finite_or_null(ov, r * H, H));
        }
        j["engine_hidden"].push_back(el);
        j["oracle_hidden"].push_back(ol);
    }
    j["engine_last_resid"] = nlohmann::json::array();
    j["oracle_last_resid"] = nlohmann::json::array();
    for (size_t r = 0; r < n; ++r) {
        j["engine_last_resid"].push_back(finite_or_null(out.trace->at(c.layers - 1, Stage::resid_ffn), r * H, H));
        j["oracle_last_resid"].push_back(finite_or_null(orc.at(c.layers - 1, Stage::resid_ffn), r * H, H));
    }
    if (!o.trace.empty()) {
        std::ofstream tf(o.trace);
        tf << trace_to_json(c, *out.trace, toks);
        if (!tf) throw BadInput(fmt::format("--trace-out {}: cannot write", o.trace));
    }
    std::ofstream f(o.out);
    f << j.dump();
    if (!f) throw BadInput(fmt::format("--out {}: cannot write", o.out));
    fmt::print("{} on {}: {}\n", e->name(), c.summary(), rep.summary());
    if (!rep.ok) fmt::print("{}", rep.table());
    return rep.ok ? 0 : 1;
}

int cmd_check(const Opts& o) {
    const ModelWeights w = o.model.empty() ? preset_weights(o) : load_hf_model(o.model);
    const ModelConfig& c = w.config;
    auto m = parse_model_mutant(o.mutant);
    if (!m) throw BadInput(fmt::format("--mutant {}: unknown model mutant", o.mutant));
    if (o.prompt < 1 || o.prompt > 4096 || o.decode < 0 || o.decode > 4096)
        throw BadInput("--prompt must be in [1, 4096] and --decode in [0, 4096]");
    const Backend b = parse_backend(o.backend);
    auto e = make_engine(w, b, 1, *m);
    const ModelPrecision prec = model_precision(c, b);
    Rng rng(o.seed ^ 0x5eedull);
    std::vector<int> hist;
    CacheLedger ledger;
    fmt::print("{} on {}\n", e->name(), c.summary());
    bool ok = true;
    for (int step = 0; step <= o.decode && ok; ++step) {
        std::vector<int> toks;
        for (int i = 0; i < (step == 0 ? o.prompt : 1); ++i)
            toks.push_back(static_cast<int>(rng.below(static_cast<std::uint64_t>(c.vocab))));
        ForwardOptions fo;
        fo.attention = o.attention;
        fo.num_splits = o.splits;
        fo.trace = true;
        StepOutput out = e->forward({{0, toks}}, fo);
        hist.insert(hist.end(), toks.begin(), toks.end());
        const OracleTrace orc = model_oracle_forward(w, hist);
        DivergenceReport rep = check_forward(w, *out.trace, {{0, &orc}}, prec, &ledger);
        ledger.record(c, *out.trace, rep);
        fmt::print("  {} ({} tokens, {}): {}\n", step == 0 ? "prefill" : fmt::format("decode {}", step), toks.size(),
                   out.attention, rep.summary());
        if (!rep.ok) fmt::print("{}", rep.table());
        ok = rep.ok;
    }
    return ok ? 0 : 1;
}

int cmd_check_trace(const Opts& o) {
    if (o.model.empty() || o.trace.empty()) throw BadInput("model-check-trace needs --model and --trace");
    const ModelWeights w = load_hf_model(o.model);
    const ModelConfig& c = w.config;
    if (c.dtype != DType::f32)
        throw BadInput("model-check-trace: the transformers profile is fp32; the checkpoint is not");
    std::vector<int> toks;
    ModelTrace t;
    try {
        t = trace_from_json(c, read_file_bytes(o.trace), transformers_fp32_attention_profile(), &toks);
    } catch (const std::invalid_argument& e) {
        throw BadInput(fmt::format("{}: {}", o.trace, e.what()));
    }
    const OracleTrace orc = model_oracle_forward(w, toks);
    const DivergenceReport rep = check_forward(w, t, {{0, &orc}}, transformers_fp32_precision(c));
    fmt::print("external trace on {}: {}\n", c.summary(), rep.summary());
    fmt::print("{}", rep.table());
    return rep.ok ? 0 : 1;
}

int cmd_save(const Opts& o) {
    if (o.out.empty()) throw BadInput("model-save needs --out");
    const ModelWeights w = preset_weights(o);
    save_hf_model(w, o.out, o.shard_bytes);
    fmt::print("wrote {} ({}{})\n", o.out, w.config.summary(),
               o.shard_bytes ? fmt::format(", shards of at most {} bytes", o.shard_bytes) : std::string());
    return 0;
}

// Runs a command with the CLI's exit-code convention.
[[noreturn]] void run_and_exit(int (*fn)(const Opts&), const Opts& o) {
    int rc;
    try {
        rc = fn(o);
    } catch (const BadInput& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        rc = 2;
    } catch (const ConfigError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        rc = 2;
    } catch (const ModelFileError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        rc = 2;
    } catch (const ModelError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        rc = 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        rc = 1;
    }
    std::fflush(stdout);
    std::exit(rc);
}

} // namespace

void register_model_commands(CLI::App& app) {
    static Opts o; // outlives main's parse: the callbacks read it
    auto* lg =
        app.add_subcommand("model-logits", "Run a HF checkpoint, check it against the oracle, write logits JSON");
    lg->add_option("--model", o.model, "directory with config.json and model.safetensors")->required();
    lg->add_option("--tokens", o.tokens, "comma-separated token ids")->required();
    lg->add_option("--backend", o.backend, "cpu or cuda");
    lg->add_option("--attention", o.attention, "attention family (auto, flash_prefill, standard_path, ...)");
    lg->add_option("--out", o.out, "output JSON file")->required();
    lg->add_option("--trace-out", o.trace, "also write the engine's trace (model-check-trace format)");
    lg->final_callback([] { run_and_exit(cmd_logits, o); });

    auto* ck = app.add_subcommand("model-check", "Prefill + decode on a model, each call checked against the oracle");
    ck->add_option("--model", o.model, "HF checkpoint directory (instead of --preset)");
    ck->add_option("--preset", o.preset, "tiny-llama, tiny-qwen2, qwen2.5-0.5b-shape (random weights)");
    ck->add_option("--dtype", o.dtype, "fp32, fp16, bf16 (presets)");
    ck->add_option("--seed", o.seed, "weights and tokens seed");
    ck->add_option("--prompt", o.prompt, "prompt length");
    ck->add_option("--decode", o.decode, "decode steps");
    ck->add_option("--backend", o.backend, "cpu or cuda");
    ck->add_option("--attention", o.attention, "attention family (auto: flash_prefill / decode_gqa)");
    ck->add_option("--splits", o.splits, "num_splits for decode_split");
    ck->add_option("--mutant", o.mutant, "model mutant to build in (see model/model_mutant.hpp)");
    ck->final_callback([] { run_and_exit(cmd_check, o); });

    auto* tr = app.add_subcommand("model-check-trace", "Check an external (transformers) trace against the oracle");
    tr->add_option("--model", o.model, "HF checkpoint directory the trace was recorded on")->required();
    tr->add_option("--trace", o.trace, "trace JSON (see trace_from_json in model/oracle/model_oracle_check.hpp)")
        ->required();
    tr->final_callback([] { run_and_exit(cmd_check_trace, o); });

    auto* sv = app.add_subcommand("model-save", "Write random weights as a HF checkpoint");
    sv->add_option("--preset", o.preset, "tiny-llama, tiny-qwen2, qwen2.5-0.5b-shape");
    sv->add_option("--dtype", o.dtype, "fp32, fp16, bf16");
    sv->add_option("--seed", o.seed, "weights seed");
    sv->add_option("--out", o.out, "output directory")->required();
    sv->add_option("--shard-bytes", o.shard_bytes,
                   "write a sharded checkpoint (model.safetensors.index.json) with shards of at most this many bytes");
    sv->final_callback([] { run_and_exit(cmd_save, o); });
}

} // namespace attncheck
