// The Qwen2.5-0.5B shape on the GPU (24 layers, hidden 896, 14 q / 2 kv
// heads of 64, FFN 4864, theta 1e6, tied embeddings, Q/K/V bias, vocab
// 151936; random weights, bf16): prefill and decode run, every call is
// within the observed bound of the fp64 oracle stage by stage, decode step
// t equals prefill row t, and the fused and standard attention paths agree
// layer by layer. Skips without a device. The fp64 oracle of this shape
// costs about 0.5 G multiply-adds per token on the host, so the sequences
// are short.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/model_test_util.hpp"

using namespace attncheck;
using namespace attncheck::model_test;

namespace {

const ModelWeights& qwen_weights() {
    static const ModelWeights w = [] {
        RandomWeightOptions o;
        o.seed = 2025;
        o.qk_bias_norm = 0; // the outlier variant is a separate test
        return random_weights(qwen25_05b_config(DType::bf16), o);
    }();
    return w;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

} // namespace

#ifdef ATTNCHECK_TEST_CUDA
TEST(ModelQwen05bShape, PrefillAndDecodeWithinTheBoundAndConsistent) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const auto t0 = std::chrono::steady_clock::now();
    Session s(qwen_weights(), 2);
    std::printf("weights ready (%.1f s): %s\n", seconds_since(t0), s.w.config.summary().c_str());
    Rng r(41);
    const std::vector<int> toks = random_tokens(r, 8, s.w.config.vocab);
    const int L = s.w.config.layers;
    StepOutput pre = s.run({{0, toks}}, {.attention = "flash_prefill"});
    DivergenceReport rp = s.check(pre);
    ASSERT_TRUE(rp.ok) << describe(rp);
    std::printf("prefill 8 via flash_prefill: %s (%.1f s)\n", rp.summary().c_str(), seconds_since(t0));
    // The same prompt through the standard path: layer by layer agreement.
    StepOutput std_ = s.run({{1, toks}}, {.attention = "standard_path"});
    DivergenceReport rs = s.check(std_);
    ASSERT_TRUE(rs.ok) << describe(rs);
    for (int l = 0; l < L; ++l)
        for (size_t t = 0; t < toks.size(); ++t)
            for (int i = 0; i < s.w.config.hidden; ++i) {
                const size_t k = t * s.w.config.hidden + i;
                const double a = pre.trace->at(l, Stage::resid_ffn)[k], b = std_.trace->at(l, Stage::resid_ffn)[k];
                ASSERT_LE(std::fabs(a - b), rp.bound(l, Stage::resid_ffn)[k] + rs.bound(l, Stage::resid_ffn)[k])
                    << "fused vs standard, layer " << l << " token " << t << " channel " << i;
            }
    // Decode: slot 1 continues by single tokens; each step within its
    // bound; step t must equal the prefill's row t (re-prefill of the longer
    // prompt in slot 0 gives the rows).
    s.reset(1);
    ASSERT_TRUE(s.check(s.run({{1, {toks[0]}}}, {.attention = "standard_path"})).ok);
    for (size_t t = 1; t < 4; ++t) {
        StepOutput d = s.run({{1, {toks[t]}}}, {.attention = "decode_gqa"});
        DivergenceReport rd = s.check(d);
        ASSERT_TRUE(rd.ok) << "decode step " << t << ": " << describe(rd);
        const int V = s.w.config.vocab;
        for (int i = 0; i < V; ++i)
            ASSERT_LE(std::fabs(d.logits[static_cast<size_t>(i)] - pre.logits[t * V + i]),
                      rd.bound(L, Stage::logits)[static_cast<size_t>(i)] + rp.bound(L, Stage::logits)[t * V + i])
                << "decode step " << t << " vs prefill row, logit " << i;
    }
    std::printf("decode steps within bound and equal to prefill rows (%.1f s)\n", seconds_since(t0));
}

TEST(ModelQwen05bShape, OutlierWeightsStayFiniteAndWithinTheBound) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    ModelConfig c = qwen25_05b_config(DType::bf16);
    c.layers = 4; // the outliers' effect shows in the first layers; keeps the oracle short
    RandomWeightOptions o;
    o.seed = 7;
    o.massive_channels = {17, 500};
    o.massive_value = 200.0;
    o.qk_bias_norm = 300.0;
    Session s(random_weights(c, o), 1);
    Rng r(42);
    StepOutput out = s.run({{0, random_tokens(r, 6, c.vocab)}});
    for (float z : out.logits) ASSERT_TRUE(std::isfinite(z));
    DivergenceReport rep = s.check(out);
    EXPECT_TRUE(rep.ok) << describe(rep);
    std::printf("outliers: %s\n", rep.summary().c_str());
}
#endif
