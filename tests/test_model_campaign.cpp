// The model campaign over random model configurations (issue 11 parts 1-2,
// CPU engine): model case files round-trip and refuse bad input by field;
// the production engine holds the model gates on random cases; every model
// mutant is killed, its shrunk case names the layer and stage where the
// mutant acts, and the written file replays the failure.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "properties/campaign/model_campaign.hpp"

using namespace attncheck;

namespace {

ModelCase small_case() {
    ModelCase c;
    c.config = tiny_config(ModelArch::qwen2, DType::bf16);
    c.config.hidden = 32;
    c.config.head_dim = 16;
    c.config.layers = 2;
    c.config.ffn = 32;
    c.weights.seed = 5;
    c.weights.massive_channels = {3};
    c.weights.massive_value = 20;
    c.slots = 2;
    ModelStep pre;
    pre.batch = {{0, {1, 2, 3, 4}}};
    ModelStep dec;
    dec.batch = {{0, {5}}};
    dec.attention = "decode_split";
    dec.num_splits = 2;
    ModelStep rag;
    rag.batch = {{1, {7, 8}}, {0, {9}}};
    c.schedule = {pre, dec, rag, model_reset(1)};
    return c;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST(ModelCase, JsonRoundTripsAndReplaysTheSameVerdict) {
    const ModelCase c = small_case();
    const std::string text = model_case_to_json(c);
    ASSERT_TRUE(looks_like_model_case(text));
    const ModelCase back = model_case_from_json(text);
    EXPECT_EQ(model_case_to_json(back), text);
    const ModelVerdict a = check_model_case(c, Backend::cpu), b = check_model_case(back, Backend::cpu);
    EXPECT_TRUE(a.ok) << a.gate << ": " << a.summary << "\n" << a.table;
    EXPECT_EQ(a.summary, b.summary);
    EXPECT_GE(a.rows_compared, 3) << "the decode_prefill gate must compare the decode and ragged rows";
}

TEST(ModelCase, BadInputIsRefusedByField) {
    auto refused = [](const std::string& text, const std::string& needle) {
        try {
            model_case_from_json(text);
        } catch (const std::exception& e) { // ModelCaseError, or ConfigError for the configuration
            if (std::string(e.what()).find(needle) != std::string::npos) return true;
            ADD_FAILURE() << "refused, but the message lacks \"" << needle << "\": " << e.what();
            return true;
        }
        ADD_FAILURE() << "accepted; expected a refusal mentioning \"" << needle << "\"";
        return false;
    };
    const std::string good = model_case_to_json(small_case());
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const size_t at = s.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return at == std::string::npos ? s : s.replace(at, from.size(), to);
    };
    refused("{", "malformed JSON");
    refused("{}", "not a model case");
    refused(with("\"slots\": 2", "\"slots\": 0"), "slots must be in");
    refused(with("\"decode_split\"", "\"no_such_family\""), "unknown attention family");
    refused(with("\"num_splits\": 2", "\"num_splits\": 0"), "num_splits");
    refused(with("\"reset\": 1", "\"reset\": 5"), "reset of slot 5");
    refused(with("\"arch\": \"qwen2\"", "\"arch\": \"gpt2\""), "config.arch");
    refused(with("\"head_dim\": 16", "\"head_dim\": 15"), "head_dim");
    refused(with("\"seq\": 1", "\"seq\": 0"), "appears twice");
    refused(with("\"hidden\": 32", "\"hidden\": \"wide\""), "config.hidden must be an integer");
    refused(with("\"hidden\": 32", "\"hidden\": 1e30"), "config.hidden must be an integer");
    refused(with("\"hidden\": 32", "\"hidden\": 99999999999"), "does not fit");
    refused(with("\"arch\": \"qwen2\"", "\"arch\": 7"), "wrong type");
    refused(with("\"massive_channels\": [\n   3\n  ]", "\"massive_channels\": [99]"), "massive_channels");
}

TEST(ModelCampaign, ProductionHoldsOnRandomConfigurations) {
    ModelRunSpec spec;
    spec.cases = 40;
    spec.seed = 11;
    spec.out_dir = "model_campaign_production";
    const ModelRunReport r = run_model_campaign(spec);
    ASSERT_FALSE(r.failure.has_value()) << r.failure->verdict.gate << ": " << r.failure->verdict.summary << "\n"
                                        << model_case_to_json(r.failure->shrunk);
    EXPECT_EQ(r.cases, 40);
    std::printf("model campaign: %lld random model cases held in %.1f s\n", r.cases, r.seconds);
}

TEST(ModelCampaign, EveryModelMutantIsKilledAndNamedByLayerAndStage) {
    int mutants = 0;
    for (const ModelMutantInfo& info : all_model_mutants()) {
        if (info.id == ModelMutant::none) continue;
        ++mutants;
        ModelRunSpec spec;
        spec.mutant = info.id;
        spec.cases = 200;
        spec.seed = 3;
        spec.out_dir = "model_campaign_mutants";
        const ModelRunReport r = run_model_campaign(spec);
        ASSERT_TRUE(r.failure.has_value()) << info.name << " survived " << r.cases << " random model cases";
        const ModelFailure& f = *r.failure;
        std::printf("%s: killed after %lld cases, shrunk in %d steps to %s: %s (layer %d, stage %s)\n", info.name,
                    r.cases, f.shrink_steps, model_case_summary(f.shrunk).c_str(), f.verdict.gate.c_str(),
                    f.verdict.layer, f.verdict.stage.c_str());
        EXPECT_EQ(f.verdict.gate, "stages") << info.name << ": " << f.verdict.summary;
        EXPECT_EQ(f.verdict.stage, info.first_stage) << info.name << ": " << f.verdict.summary;
        EXPECT_EQ(f.verdict.layer, model_mutant_layer(info.id, f.shrunk.config.layers)) << f.verdict.summary;
        // The file replays: same gate on the mutant, every gate held on production.
        const ModelCase replay = model_case_from_json(read_file(f.file));
        const ModelVerdict again = check_model_case(replay, Backend::cpu, info.id);
        EXPECT_FALSE(again.ok) << info.name << ": the counterexample file does not fail again";
        EXPECT_EQ(again.gate, f.verdict.gate);
        const ModelVerdict prod = check_model_case(replay, Backend::cpu);
        EXPECT_TRUE(prod.ok) << info.name << ": production fails the shrunk case too: " << prod.summary;
    }
    EXPECT_EQ(mutants, static_cast<int>(ModelMutant::count_) - 1);
}
