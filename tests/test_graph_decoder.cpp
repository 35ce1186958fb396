// The device-resident CUDA-graph decoder (model/graph_decoder.hpp) against the
// checked CUDA engine (model/model_cuda.cu), which test_model_gpu holds to the
// fp64 oracle stage by stage: the same kernels and rounding points, so the
// logits of every step must be equal bit for bit, and so must the greedy
// tokens. A mutant engine shows the comparison can fail. Without a device the
// GPU tests skip with the reason, and the refusals are still checked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/case/rng.hpp"
#include "model/graph_decoder.hpp"
#include "model/model_session.hpp"
#include "tests/model_test_util.hpp"

namespace attncheck {
namespace {

using model_test::random_tokens;

ModelWeights weights_for(ModelArch arch, DType dt, int head_dim, int n_q, int n_kv, std::uint64_t seed) {
    ModelConfig c = tiny_config(arch, dt);
    c.head_dim = head_dim;
    c.n_q_heads = n_q;
    c.n_kv_heads = n_kv;
    RandomWeightOptions r;
    r.seed = seed;
    return random_weights(c, r);
}

// Runs `steps` decode steps of B sequences on both decoders: teacher-forced
// prompts, then greedy. Returns the number of steps whose logits differ in
// any bit (0 expected for the production engine).
int steps_that_differ(const ModelWeights& w, ModelMutant reference_mutant, int B, int prompt, int greedy) {
    GraphDecoder dec(w, {.batch = B, .max_len = prompt + greedy + 1});
    auto ref = make_model_engine(w, Backend::cuda, B, reference_mutant);
    Rng rng(w.config.layers * 1000 + B);
    std::vector<std::vector<int>> prompts;
    for (int b = 0; b < B; ++b) prompts.push_back(random_tokens(rng, prompt, w.config.vocab));
    ForwardOptions fo;
    fo.attention = "decode_gqa";
    int differ = 0;
    std::vector<int> next(static_cast<size_t>(B));
    for (int t = 0; t < prompt + greedy; ++t) {
        std::vector<SeqChunk> batch;
        for (int b = 0; b < B; ++b)
            batch.push_back({b,
                             {t < prompt ? prompts[static_cast<size_t>(b)][static_cast<size_t>(t)]
                                         : next[static_cast<size_t>(b)]}});
        if (t < prompt) {
            std::vector<int> col;
            for (const SeqChunk& ch : batch) col.push_back(ch.tokens[0]);
            dec.step(col);
        } else
            dec.step_greedy();
        const StepOutput want = ref->forward(batch, fo);
        const std::vector<float> got = dec.logits();
        const std::vector<int> sampled = dec.sampled();
        EXPECT_EQ(got.size(), want.logits.size());
        if (got.size() != want.logits.size()) return -1;
        for (float x : got) EXPECT_TRUE(std::isfinite(x)) << "a poisoned activation reached the logits";
        if (std::memcmp(got.data(), want.logits.data(), got.size() * sizeof(float)) != 0) ++differ;
        for (int b = 0; b < B; ++b) {
            next[static_cast<size_t>(b)] = want.argmax(static_cast<size_t>(b));
            if (reference_mutant == ModelMutant::none) {
                EXPECT_EQ(sampled[static_cast<size_t>(b)], next[static_cast<size_t>(b)])
                    << "step " << t << " seq " << b;
            }
        }
        // The device decoder feeds back its own token; keep both on one path.
        if (reference_mutant != ModelMutant::none) next = sampled;
        dec.check_guards();
        EXPECT_EQ(dec.length(), t + 1);
    }
    return differ;
}

struct Shape {
    ModelArch arch;
    DType dtype;
    int head_dim, n_q, n_kv, batch;
};

TEST(GraphDecoder, LogitsAndTokensEqualTheCheckedEngineBitForBit) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    // GQA ratios 2/1, 3/1, 7/1 (the Qwen group) and 1/1; head dims 32..256.
    const Shape shapes[] = {
        {ModelArch::llama, DType::f32, 64, 4, 2, 1},   {ModelArch::qwen2, DType::bf16, 64, 14, 2, 3},
        {ModelArch::llama, DType::f16, 128, 3, 1, 2},  {ModelArch::qwen2, DType::f16, 32, 2, 2, 4},
        {ModelArch::llama, DType::bf16, 256, 4, 2, 2},
    };
    for (const Shape& s : shapes) {
        SCOPED_TRACE(::testing::Message() << arch_name(s.arch) << " " << dtype_name(s.dtype) << " d" << s.head_dim
                                          << " " << s.n_q << "/" << s.n_kv << " B" << s.batch);
        const ModelWeights w = weights_for(s.arch, s.dtype, s.head_dim, s.n_q, s.n_kv, 7);
        EXPECT_EQ(steps_that_differ(w, ModelMutant::none, s.batch, 5, 6), 0);
    }
}

TEST(GraphDecoder, TheComparisonCatchesAWrongCachePosition) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights w = weights_for(ModelArch::llama, DType::f32, 64, 4, 2, 3);
    // The mutant writes each new K/V over the previous slot: every step
    // after the first differs.
    EXPECT_GE(steps_that_differ(w, ModelMutant::kv_cache_wrong_position, 2, 3, 3), 5);
}

TEST(GraphDecoder, GenerateFeedsBackItsOwnTokens) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights w = weights_for(ModelArch::qwen2, DType::bf16, 64, 4, 2, 11);
    GraphDecoder dec(w, {.batch = 2, .max_len = 16});
    Rng rng(5);
    const std::vector<std::vector<int>> prompts{random_tokens(rng, 4, w.config.vocab),
                                                random_tokens(rng, 4, w.config.vocab)};
    const auto got = dec.generate(prompts, 6);
    auto ref = make_model_engine(w, Backend::cuda, 1);
    ForwardOptions one_at_a_time;
    one_at_a_time.attention = "decode_gqa";
    for (size_t b = 0; b < prompts.size(); ++b) {
        // The checked engine one sequence at a time, prompt token by token.
        ref->reset(0);
        StepOutput s;
        for (int t : prompts[b]) s = ref->forward({{0, {t}}}, one_at_a_time);
        std::vector<int> want{s.argmax(0)};
        while (want.size() < 6) {
            s = ref->forward({{0, {want.back()}}}, one_at_a_time);
            want.push_back(s.argmax(0));
        }
        EXPECT_EQ(got[b], want) << "sequence " << b;
    }
    // A second generate starts again from an empty cache.
    EXPECT_EQ(dec.generate(prompts, 6), got);
}

TEST(GraphDecoder, RefusesBadUse) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights w = weights_for(ModelArch::llama, DType::f32, 64, 4, 2, 1);
    GraphDecoder dec(w, {.batch = 2, .max_len = 2});
    EXPECT_THROW(dec.step_greedy(), ModelError); // no token to feed back yet
    EXPECT_THROW(dec.sampled(), ModelError);
    EXPECT_THROW(dec.step({1}), ModelError);                 // one token for two sequences
    EXPECT_THROW(dec.step({1, w.config.vocab}), ModelError); // outside the vocabulary
    dec.step({1, 2});
    dec.step_greedy();
    EXPECT_THROW(dec.step_greedy(), ModelError); // past max_len
    EXPECT_EQ(dec.length(), 2);
    dec.check_guards();
}

// Runs everywhere: bad options are refused before any device is touched, and
// without a device (or a CUDA build) construction says why.
TEST(GraphDecoder, RefusesBadOptionsAndSaysWhenThereIsNoDevice) {
    const ModelWeights w = weights_for(ModelArch::llama, DType::f32, 64, 4, 2, 1);
    GraphDecoderOptions o;
    o.batch = 0;
    EXPECT_THROW(GraphDecoder(w, o), ModelError);
    o.batch = 1;
    o.max_len = 0;
    EXPECT_THROW(GraphDecoder(w, o), ModelError);
    const ModelWeights big_head = weights_for(ModelArch::llama, DType::f32, 512, 2, 1, 1);
    EXPECT_THROW(GraphDecoder(big_head, GraphDecoderOptions{}), ModelError);
    if (!model_test::skip_reason().empty()) {
        try {
            GraphDecoder dec(w, GraphDecoderOptions{});
            ADD_FAILURE() << "constructed without a device";
        } catch (const ModelError& e) {
            EXPECT_NE(std::string(e.what()).find("graph decoder"), std::string::npos) << e.what();
        }
    }
}

} // namespace
} // namespace attncheck
