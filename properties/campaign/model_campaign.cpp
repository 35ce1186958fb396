#include "properties/campaign/model_campaign.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/flash_prefill/flash_prefill.hpp"
#include "properties/campaign/external_model_check.hpp"
#include "properties/campaign/rapidcheck_driver.hpp"

namespace attncheck {

namespace {

// Head layouts the issue names, smallest first (RapidCheck shrinks an
// element draw towards the front).
const std::vector<std::pair<int, int>> kHeads = {{1, 1}, {2, 1}, {3, 1}, {4, 2}, {12, 2}, {14, 2}, {28, 4}, {32, 8}};
// head_dim: even, 2..256, with the production sizes; small ones first.
const std::vector<int> kHeadDims = {2, 4, 8, 16, 32, 64, 80, 96, 112, 128, 256};

std::vector<int> gen_tokens(int n, int vocab) {
    return *rc::gen::container<std::vector<int>>(static_cast<size_t>(n), rc::gen::inRange(0, vocab));
}

} // namespace

const std::vector<std::pair<int, int>>& model_head_layouts() { return kHeads; }
const std::vector<int>& model_head_dims() { return kHeadDims; }

rc::Gen<ModelCase> gen_model_case() {
    return rc::gen::exec([] {
        ModelCase mc;
        ModelConfig& c = mc.config;
        c.arch = *rc::gen::element(ModelArch::llama, ModelArch::qwen2);
        const auto heads = *rc::gen::elementOf(kHeads);
        c.n_q_heads = heads.first;
        c.n_kv_heads = heads.second;
        // Wide layouts keep their heads small, so a case stays cheap on a CPU.
        const int big = c.n_q_heads > 12 ? 6 : static_cast<int>(kHeadDims.size());
        c.head_dim = kHeadDims[static_cast<size_t>(*rc::gen::inRange(0, big))];
        c.hidden = *rc::gen::element(8, 16, 32, 64, 128);
        c.layers = *rc::gen::inRange(1, 5);
        c.ffn = *rc::gen::element(8, 16, 32, 64, 128);
        c.vocab = *rc::gen::inRange(8, 80);
        c.rope_theta = *rc::gen::element(10000.0, 1e6, 500.0);
        c.rope_pairing = *rc::gen::element(RopePairing::rotate_half, RopePairing::interleaved);
        // RoPE scaling with a short original context, so that the schedule's
        // positions reach the scaled frequencies' regimes.
        RopeScaling& rs = c.rope_scaling;
        rs.type = *rc::gen::element(RopeScalingType::none, RopeScalingType::linear, RopeScalingType::llama3,
                                    RopeScalingType::yarn);
        if (rs.type != RopeScalingType::none) {
            rs.factor = *rc::gen::element(2.0, 4.0, 8.0, 32.0);
            rs.original_max = *rc::gen::element(8.0, 64.0, 4096.0);
        }
        c.qkv_bias = c.arch == ModelArch::qwen2 || *rc::gen::arbitrary<bool>();
        c.tied_embeddings = *rc::gen::arbitrary<bool>();
        c.rms_eps = *rc::gen::element(1e-6, 1e-5);
        c.dtype = *rc::gen::element(DType::f32, DType::bf16, DType::f16);
        RandomWeightOptions& w = mc.weights;
        w.seed = *rc::gen::inRange<std::uint64_t>(1, 1u << 30);
        if (*rc::gen::inRange(0, 4) == 3) { // massive activations in a fixed channel
            w.massive_channels = {*rc::gen::inRange(0, c.hidden)};
            w.massive_value = *rc::gen::element(10.0, 30.0, -20.0);
        }
        if (c.qkv_bias && *rc::gen::inRange(0, 4) == 3) w.qk_bias_norm = *rc::gen::element(5.0, 30.0);

        // The schedule: a prompt on slot 0 (maybe in two chunks), decode
        // steps, then maybe a ragged batch with slot 1 and a reset.
        const bool flash = kernels::flash::head_dim_supported(c.head_dim); // the others take any head_dim
        auto prefill_family = [&] {
            return flash ? *rc::gen::element<std::string>("auto", "standard_path", "flash_prefill")
                         : *rc::gen::element<std::string>("auto", "standard_path");
        };
        auto call = [&](std::vector<SeqChunk> batch, std::string attention, int splits) {
            ModelStep s;
            s.batch = std::move(batch);
            s.attention = std::move(attention);
            s.num_splits = splits;
            mc.schedule.push_back(std::move(s));
        };
        mc.slots = 2;
        call({{0, gen_tokens(*rc::gen::inRange(1, 10), c.vocab)}}, prefill_family(), 1);
        if (*rc::gen::arbitrary<bool>()) call({{0, gen_tokens(*rc::gen::inRange(1, 5), c.vocab)}}, prefill_family(), 1);
        const int decodes = *rc::gen::inRange(0, 4);
        for (int i = 0; i < decodes; ++i) {
            const std::string fam = *rc::gen::element<std::string>("auto", "decode", "decode_gqa", "decode_split");
            call({{0, gen_tokens(1, c.vocab)}}, fam, fam == "decode_split" ? *rc::gen::inRange(1, 5) : 1);
        }
        if (*rc::gen::arbitrary<bool>()) // ragged: slot 1's prompt beside slot 0's next token
            call({{1, gen_tokens(*rc::gen::inRange(1, 7), c.vocab)}, {0, gen_tokens(1, c.vocab)}}, "auto", 1);
        if (*rc::gen::arbitrary<bool>()) {
            mc.schedule.push_back(model_reset(0));
            call({{0, gen_tokens(*rc::gen::inRange(1, 6), c.vocab)}}, "auto", 1);
            call({{0, gen_tokens(1, c.vocab)}}, "auto", 1);
        }
        return mc;
    });
}

std::string model_counterexample_json(const ModelFailure& f, const ModelRunSpec& spec) {
    nlohmann::json j = nlohmann::json::parse(model_case_to_json(f.shrunk));
    j["failure"] = {{"gate", f.verdict.gate},
                    {"layer", f.verdict.layer},
                    {"stage", f.verdict.stage},
                    {"step", f.verdict.step},
                    {"summary", f.verdict.summary},
                    {"mutant", model_mutant_name(spec.mutant)},
                    {"backend", backend_name(spec.backend)},
                    {"shrink_steps", f.shrink_steps}};
    if (!spec.external.empty()) j["failure"]["external"] = spec.external;
    return j.dump(1);
}

std::string save_model_counterexample(const ModelFailure& f, const ModelRunSpec& spec) {
    std::filesystem::create_directories(spec.out_dir);
    const std::string text = model_counterexample_json(f, spec);
    const std::string path = fmt::format("{}/model-{}-{}-{:08x}.json", spec.out_dir, model_mutant_name(spec.mutant),
                                         f.verdict.gate, static_cast<unsigned>(std::hash<std::string>{}(text)));
    std::ofstream(path) << text << "\n";
    return path;
}

ModelRunReport run_model_campaign(const ModelRunSpec& spec) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    ModelRunReport rep;
    bool shrinking = false;
    int shrink_steps = 0;
    std::optional<std::pair<ModelCase, ModelVerdict>> last_fail;
    const rc::Gen<ModelCase> gen = gen_model_case();
    std::unique_ptr<ModelAdapter> adapter;
    if (!spec.external.empty()) adapter = std::make_unique<ModelAdapter>(spec.external);
    rep.target = adapter ? adapter->caps().name : "model";
    auto property = [&] {
        const ModelCase c = adapter ? adapter->restrict(*gen) : *gen;
        const ModelVerdict v =
            adapter ? check_external_model_case(c, *adapter) : check_model_case(c, spec.backend, spec.mutant);
        if (v.skipped && !shrinking) {
            ++rep.skipped;
            rep.last_skip = v.summary;
        }
        if (v.ok) {
            if (!shrinking && !v.skipped) ++rep.cases;
            return;
        }
        if (shrinking) ++shrink_steps;
        shrinking = true;
        last_fail.emplace(c, v);
        RC_FAIL(v.gate + ": " + v.summary);
    };
    // Refused cases count toward the budget, so an adapter that refuses everything still ends.
    for (std::uint64_t round = 0; !last_fail && rep.cases + rep.skipped < spec.cases; ++round) {
        if (spec.seconds > 0 && elapsed() >= spec.seconds) break;
        rc::detail::TestParams params;
        params.seed = spec.seed * 0x9E3779B97F4A7C15ull + round;
        // Rounds of 10 cases, so a time limit is honoured between rounds.
        params.maxSuccess = static_cast<int>(std::min<long long>(10, spec.cases - rep.cases - rep.skipped));
        params.maxSize = 100;
        rc::detail::TestMetadata meta;
        meta.id = meta.description = "model";
        QuietListener quiet;
        std::lock_guard<std::mutex> lock(rapidcheck_lock());
        rc::detail::checkProperty(rc::detail::toProperty(property), meta, params, quiet);
    }
    rep.seconds = elapsed();
    if (last_fail) {
        ModelFailure f{last_fail->first, last_fail->second, shrink_steps, {}};
        f.file = save_model_counterexample(f, spec);
        rep.failure = std::move(f);
    }
    return rep;
}

} // namespace attncheck
