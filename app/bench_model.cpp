// `attncheck bench model`: the device-resident decoder (model/graph_decoder.hpp)
// generating greedily at a preset's shape with random weights. Prints the
// median of CUDA-event timings of the decode-step graph (ms per step, and per
// token at batch > 1), the wall time of a generate loop that reads every
// sampled token back (what a serving loop sees), and beside them the
// weight-bandwidth limit (every weight byte read once per step at
// 4.3 TB/s, anchors.md) and transformers' `generate` -- anchors.md's 54.1
// ms/token, or with --anchor the figure bench/model_generate.py measured in
// the same device call -- as ratios (anchor / ours: above 1 is faster).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "engine/case/rng.hpp"
#include "engine/timing/median.hpp"
#include "model/graph_decoder.hpp"
#include "model/model_engine.hpp"

namespace attncheck {

namespace {

// anchors.md (H200, 2026-11-30): transformers generate, eager, batch 1,
// Qwen2.5-0.5B shape, bf16; and the HBM read rate the limit assumes.
constexpr double kTransformersMsPerToken = 54.1;
constexpr double kWeightReadBytesPerS = 4.3e12;

struct Args {
    std::string preset = "qwen2.5-0.5b-shape", dtype = "bf16", anchor;
    int batch = 1, prompt = 16, new_tokens = 256, warmup = 16;
    std::uint64_t seed = 1;
    bool json = false;
};

struct Refusal : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// {"ms_per_token": x, ...} from bench/model_generate.py, for this batch.
double anchor_from(const std::string& file, int batch) {
    std::ifstream in(file);
    if (!in) throw Refusal(fmt::format("--anchor {}: cannot read the file", file));
    nlohmann::json j;
    try {
        in >> j;
    } catch (const std::exception& e) {
        throw Refusal(fmt::format("--anchor {}: not JSON ({})", file, e.what()));
    }
    const nlohmann::json* row = nullptr;
    if (j.is_array()) {
        for (const auto& r : j)
            if (r.is_object() && r.value("batch", -1) == batch) row = &r;
    } else if (j.is_object() && j.value("batch", -1) == batch)
        row = &j;
    if (!row || !row->contains("ms_per_token") || !(*row)["ms_per_token"].is_number())
        throw Refusal(
            fmt::format("--anchor {}: no object with \"batch\": {} and a numeric \"ms_per_token\"", file, batch));
    return (*row)["ms_per_token"].get<double>();
}

int run(const Args& a) {
    const std::optional<DType> dt = parse_dtype(a.dtype);
    if (!dt) throw Refusal(fmt::format("--dtype {}: expected fp32, fp16 or bf16", a.dtype));
    const std::optional<ModelConfig> c = preset_config(a.preset, *dt);
    if (!c) throw Refusal(fmt::format("--preset {}: expected {}", a.preset, kModelPresetNames));
    const double anchor_ms = a.anchor.empty() ? kTransformersMsPerToken : anchor_from(a.anchor, a.batch);
    std::string why;
    if (!cuda_usable(&why)) throw Refusal("needs a CUDA device: " + why);

    RandomWeightOptions r;
    r.seed = a.seed;
    const ModelWeights w = random_weights(*c, r);
    GraphDecoderOptions o;
    o.batch = a.batch;
    o.max_len = a.prompt + a.warmup + a.new_tokens + 1;
    o.poison_each_step = false; // poisoned once; the step as a user would run it
    GraphDecoder dec(w, o);

    // Random prompts (never all zeros): one per sequence.
    Rng rng(a.seed ^ 0x6d6f64656cULL);
    std::vector<std::vector<int>> prompts(static_cast<size_t>(a.batch));
    for (auto& p : prompts)
        for (int i = 0; i < a.prompt; ++i)
            p.push_back(static_cast<int>(rng.below(static_cast<std::uint64_t>(c->vocab))));
    auto prefill = [&] {
        dec.reset();
        for (int i = 0; i < a.prompt; ++i) {
            std::vector<int> col;
            for (const auto& p : prompts) col.push_back(p[static_cast<size_t>(i)]);
            dec.step(col);
        }
        (void)dec.sampled();
    };

    // Device time: warm-up steps, then the timed steps back to back.
    prefill();
    (void)dec.timed_greedy_steps(a.warmup);
    const std::vector<double> ms = dec.timed_greedy_steps(a.new_tokens);
    (void)dec.sampled(); // NaN logits would end the benchmark here
    // Wall time: the same steps, each token read back before the next.
    prefill();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int> first_seq;
    for (int i = 0; i < a.new_tokens; ++i) {
        dec.step_greedy();
        first_seq.push_back(dec.sampled()[0]);
    }
    const double wall_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / a.new_tokens;
    dec.check_guards();

    const double step_ms = median_of(ms);
    const double bytes = static_cast<double>(c->parameter_count()) * (c->dtype == DType::f32 ? 4 : 2);
    const double limit_ms = bytes / kWeightReadBytesPerS * 1e3;
    const double per_token = step_ms / a.batch;
    if (a.json) {
        nlohmann::json j;
        j["preset"] = a.preset;
        j["dtype"] = a.dtype;
        j["batch"] = a.batch;
        j["prompt"] = a.prompt;
        j["new_tokens"] = a.new_tokens;
        j["ms_per_step"] = step_ms;
        j["ms_per_step_min"] = *std::min_element(ms.begin(), ms.end());
        j["ms_per_step_max"] = *std::max_element(ms.begin(), ms.end());
        j["ms_per_token"] = per_token;
        j["wall_ms_per_step"] = wall_ms;
        j["tokens_per_s"] = 1e3 / per_token;
        j["weight_bytes"] = bytes;
        j["weight_bandwidth_limit_ms_per_step"] = limit_ms;
        j["weight_read_tb_s"] = bytes / (step_ms * 1e-3) / 1e12;
        j["anchor"] = a.anchor.empty() ? "anchors.md: transformers generate, eager, batch 1" : a.anchor;
        j["anchor_ms_per_token"] = anchor_ms;
        j["ratio"] = anchor_ms / per_token;
        j["device"] = device_line();
        j["commit"] = build_commit();
        j["generated_seq0_head"] =
            std::vector<int>(first_seq.begin(), first_seq.begin() + std::min<size_t>(8, first_seq.size()));
        fmt::print("{}\n", j.dump(2));
        return 0;
    }
    fmt::print("bench model: {} ({}), {}, random weights ({:.2f} GB), batch {}, prompt {} + {} new tokens\n", a.preset,
               a.dtype, device_line(), bytes / 1e9, a.batch, a.prompt, a.new_tokens);
    fmt::print(
        "  decode step (CUDA graph, median of {} event timings): {:.4f} ms  ({:.4f} ms/token, {:.0f} tokens/s)\n",
        ms.size(), step_ms, per_token, 1e3 / per_token);
    fmt::print("  generate loop, each token read back:                 {:.4f} ms/step\n", wall_ms);
    fmt::print(
        "  weight-bandwidth limit at 4.3 TB/s:                  {:.4f} ms/step  (ours reads weights at {:.2f} TB/s)\n",
        limit_ms, bytes / (step_ms * 1e-3) / 1e12);
    fmt::print("  transformers generate ({}): {:.2f} ms/token  -> ratio {:.1f}x\n",
               a.anchor.empty() ? "anchors.md" : "measured in this run", anchor_ms, anchor_ms / per_token);
    return 0;
}

} // namespace

void register_bench_model(CLI::App& bench, int& rc) {
    auto a = std::make_shared<Args>();
    auto* m = bench.add_subcommand(
        "model", "the device-resident CUDA-graph decoder generating greedily: ms/token beside transformers");
    m->add_option("--preset", a->preset, std::string("model shape: ") + kModelPresetNames);
    m->add_option("--dtype", a->dtype, "fp32, fp16 or bf16");
    m->add_option("--batch", a->batch, "sequences decoded together")->check(CLI::Range(1, 4096));
    m->add_option("--prompt", a->prompt, "prompt tokens per sequence")->check(CLI::Range(1, 65536));
    m->add_option("--new", a->new_tokens, "timed decode steps")->check(CLI::Range(1, 65536));
    m->add_option("--warmup", a->warmup, "untimed decode steps first")->check(CLI::Range(0, 65536));
    m->add_option("--seed", a->seed, "weights and prompt seed");
    m->add_option("--anchor", a->anchor, "transformers timings from bench/model_generate.py (default: anchors.md)");
    m->add_flag("--json", a->json, "one JSON object on stdout");
    m->callback([a, &rc] {
        try {
            rc = run(*a);
        } catch (const Refusal& e) {
            fmt::print(stderr, "bench model: {}\n", e.what());
            rc = 2;
        } catch (const ModelError& e) {
            fmt::print(stderr, "bench model: {}\n", e.what());
            rc = 2;
        }
    });
}

} // namespace attncheck
