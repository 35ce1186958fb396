// The greedy model case shrinker (properties/campaign/model_case_shrinker.hpp):
// a synthetic failure shrinks a large case to exactly the smallest one the
// reductions reach, every candidate it runs validates, the evaluation budget
// holds, and real model mutants' failing cases shrink on the CPU engine to
// smaller cases that still fail the same gate; a case that does not fail is
// refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "properties/campaign/model_case_shrinker.hpp"

namespace attncheck {
namespace {

ModelStep call(std::vector<SeqChunk> batch, std::string attention = "auto", int splits = 1) {
    return model_call(std::move(batch), std::move(attention), splits);
}
ModelStep reset(int slot) { return model_reset(slot); }

// A large case with every part the reductions undo.
ModelCase big_case() {
    ModelCase c;
    ModelConfig& m = c.config;
    m = tiny_config(ModelArch::qwen2, DType::bf16);
    m.layers = 4;
    m.hidden = 64;
    m.ffn = 96;
    m.n_q_heads = 8;
    m.n_kv_heads = 2;
    m.head_dim = 32;
    m.vocab = 50;
    m.rope_theta = 500;
    m.rms_eps = 1e-5;
    m.rope_pairing = RopePairing::interleaved;
    m.rope_scaling.type = RopeScalingType::linear;
    m.rope_scaling.factor = 4;
    RandomWeightOptions& w = c.weights;
    w.seed = 99;
    w.proj_std = 0.05;
    w.bias_std = 0.1;
    w.massive_channels = {3, 40};
    w.massive_value = 30;
    w.qk_bias_norm = 5;
    c.slots = 3;
    c.schedule = {call({{0, {11, 12, 13, 14, 15, 16, 17, 18}}}, "standard_path"),
                  call({{0, {21}}}, "decode_split", 4),
                  call({{1, {31, 32, 33}}, {0, {34}}}),
                  reset(1),
                  call({{2, {41, 42, 43, 44, 45}}}, "standard_path", 2),
                  call({{2, {46}}}, "decode")};
    validate(c);
    return c;
}

int tokens(const ModelCase& c) {
    int n = 0;
    for (const ModelStep& s : c.schedule)
        for (const SeqChunk& ch : s.batch) n += static_cast<int>(ch.tokens.size());
    return n;
}

bool deep_with_a_long_chunk_and_massive(const ModelCase& c) {
    bool long_chunk = false;
    for (const ModelStep& s : c.schedule)
        for (const SeqChunk& ch : s.batch) long_chunk = long_chunk || ch.tokens.size() >= 3;
    return c.config.layers >= 2 && c.config.n_q_heads % 4 == 0 && long_chunk && !c.weights.massive_channels.empty();
}

TEST(ModelCaseShrinker, SyntheticFailureShrinksToTheMinimalCase) {
    const ModelCase big = big_case();
    ASSERT_TRUE(deep_with_a_long_chunk_and_massive(big));
    int runs = 0;
    auto fails = [&](const ModelCase& k) {
        ++runs;
        EXPECT_NO_THROW(validate(k)) << model_case_to_json(k); // every candidate run validates
        return deep_with_a_long_chunk_and_massive(k);
    };
    ShrinkStats st;
    const ModelCase s = shrink_model_case(big, fails, {}, &st);

    ModelCase want; // the smallest case that still fails, as the table reaches it
    ModelConfig& m = want.config;
    m.arch = ModelArch::qwen2; // never changed
    m.dtype = DType::bf16;     // never changed
    m.tied_embeddings = true;  // never changed (qwen2's default)
    m.layers = 2;
    m.hidden = 4; // the smallest that keeps massive channel 3
    m.ffn = 1;
    m.n_q_heads = 4; // the table halves neither ratio 4 nor 3: 1 and 3 are what it tries
    m.n_kv_heads = 1;
    m.head_dim = 2;
    m.vocab = 2;
    want.weights.massive_channels = {3};
    want.weights.massive_value = 30; // the channel is needed, so the value stays
    want.slots = 1;
    want.schedule = {call({{0, {0, 0, 0}}})};
    EXPECT_EQ(model_case_to_json(s), model_case_to_json(want));
    EXPECT_FALSE(st.budget_spent);
    EXPECT_EQ(runs, st.evaluations);
    EXPECT_EQ(st.accepted, static_cast<int>(st.steps.size()));
    EXPECT_LT(st.evaluations, 150) << "the binary searches should keep the walk short";
    const auto names = model_shrink_reduction_names();
    for (const ShrinkStep& step : st.steps)
        EXPECT_NE(std::find(names.begin(), names.end(), step.reduction), names.end()) << step.reduction;
    ASSERT_FALSE(st.steps.empty());
    EXPECT_EQ(st.steps.front().reduction, "drop_step") << "most drastic first";
}

TEST(ModelCaseShrinker, EvaluationBudgetHolds) {
    for (int budget : {0, 1, 5, 20}) {
        int runs = 0;
        auto fails = [&](const ModelCase& k) {
            ++runs;
            return deep_with_a_long_chunk_and_massive(k);
        };
        ShrinkStats st;
        ModelShrinkOptions opt;
        opt.max_evaluations = budget;
        const ModelCase s = shrink_model_case(big_case(), fails, opt, &st);
        EXPECT_LE(runs, budget);
        EXPECT_EQ(runs, st.evaluations);
        EXPECT_TRUE(st.budget_spent) << "budget " << budget;
        EXPECT_TRUE(deep_with_a_long_chunk_and_massive(s)) << "the case kept must still fail";
    }
}

// A case that still fails stays as it is when no candidate fails.
TEST(ModelCaseShrinker, NothingSmallerFailsKeepsTheCase) {
    const ModelCase big = big_case();
    const std::string text = model_case_to_json(big);
    ShrinkStats st;
    const ModelCase s = shrink_model_case(
        big, [](const ModelCase&) { return false; }, {}, &st);
    EXPECT_EQ(model_case_to_json(s), text);
    EXPECT_EQ(st.accepted, 0);
    EXPECT_FALSE(st.budget_spent);
}

// A mid-sized case of the kind the fuzzer reaches: a prompt in two chunks,
// decode steps, a ragged call and a reset, over three layers.
ModelCase mutant_case() {
    ModelCase c;
    c.config = tiny_config(ModelArch::llama, DType::f32);
    c.config.layers = 3;
    c.config.hidden = 32;
    c.config.ffn = 64;
    c.config.head_dim = 16;
    c.config.vocab = 40;
    c.weights.seed = 7;
    c.slots = 2;
    c.schedule = {call({{0, {1, 2, 3, 4, 5}}}),
                  call({{0, {6, 7, 8}}}, "standard_path"),
                  call({{0, {9}}}, "decode_split", 3),
                  call({{1, {10, 11, 12, 13}}, {0, {14}}}),
                  call({{0, {15}}}, "decode_gqa"),
                  reset(1),
                  call({{1, {16, 17}}})};
    validate(c);
    return c;
}

void expect_shrinks(ModelMutant mutant) {
    const ModelCase c = mutant_case();
    ASSERT_TRUE(check_model_case(c, Backend::cpu).ok) << "the production engine must hold the case";
    const ModelVerdict found = check_model_case(c, Backend::cpu, mutant);
    ASSERT_FALSE(found.ok) << model_mutant_name(mutant) << " does not fail the case";
    ShrinkStats st;
    const ModelFailure f = shrink_model_failure(c, Backend::cpu, mutant, found.gate, {}, &st);
    EXPECT_EQ(f.verdict.gate, found.gate);
    EXPECT_EQ(f.shrink_steps, st.accepted);
    EXPECT_GT(f.shrink_steps, 0);
    EXPECT_TRUE(f.file.empty());
    const ModelCase& s = f.shrunk;
    ASSERT_NO_THROW(validate(s));
    EXPECT_LT(s.schedule.size(), c.schedule.size());
    EXPECT_LE(s.config.layers, c.config.layers);
    EXPECT_LT(tokens(s), tokens(c));
    EXPECT_EQ(s.config.dtype, c.config.dtype);
    EXPECT_EQ(s.config.arch, c.config.arch);
    // The shrunk case replays the same failure, and the production engine holds it.
    const ModelVerdict again = check_model_case(s, Backend::cpu, mutant);
    EXPECT_FALSE(again.ok);
    EXPECT_EQ(again.gate, found.gate);
    EXPECT_EQ(again.summary, f.verdict.summary);
    EXPECT_TRUE(check_model_case(s, Backend::cpu).ok);
    std::printf("%s: %s -> %s (%d steps, %d runs)\n", model_mutant_name(mutant), model_case_summary(c).c_str(),
                model_case_summary(s).c_str(), f.shrink_steps, st.evaluations);
}

TEST(ModelCaseShrinker, KvCacheWrongPositionShrinksAndStillFails) {
    expect_shrinks(ModelMutant::kv_cache_wrong_position);
}

TEST(ModelCaseShrinker, ResidualLostShrinksAndStillFails) { expect_shrinks(ModelMutant::residual_lost); }

TEST(ModelCaseShrinker, ACaseThatDoesNotFailTheGateIsRefused) {
    const ModelCase c = mutant_case();
    EXPECT_THROW(shrink_model_failure(c, Backend::cpu, ModelMutant::none, "stages"), std::invalid_argument);
    const ModelVerdict v = check_model_case(c, Backend::cpu, ModelMutant::residual_lost);
    ASSERT_FALSE(v.ok);
    const std::string other = v.gate == "stages" ? "decode_prefill" : "stages";
    EXPECT_THROW(shrink_model_failure(c, Backend::cpu, ModelMutant::residual_lost, other), std::invalid_argument);
}

} // namespace
} // namespace attncheck
