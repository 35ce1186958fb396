// Model properties on tiny configurations: every call of the engine is
// checked stage by stage against the fp64 oracle (recomputing each sequence
// from scratch) under the observed error bound, and the engine's own
// calls are compared with each other (decode vs prefill, chunked vs
// one-shot, one attention family vs another, batched vs alone) under the
// sum of their bounds. Each model mutant must be caught, and the report
// must name the layer and stage where the mutant acts.
//
// Built twice: test_model_cpu (the CPU engine) and, with
// ATTNCHECK_TEST_CUDA, test_model_gpu (the CUDA engine; skips without a
// device).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/model_test_util.hpp"
#ifndef ATTNCHECK_TEST_CUDA
#include <boost/multiprecision/cpp_bin_float.hpp>
#endif

using namespace attncheck;
using namespace attncheck::model_test;

namespace {

struct Variant {
    ModelArch arch;
    DType dtype;
};
std::string vname(const ::testing::TestParamInfo<Variant>& i) {
    return std::string(arch_name(i.param.arch)) + "_" + dtype_name(i.param.dtype);
}

ModelWeights weights_for(const Variant& v, std::uint64_t seed = 1) {
    RandomWeightOptions o;
    o.seed = seed;
    return random_weights(tiny_config(v.arch, v.dtype), o);
}

// |a - b| <= ba + bb elementwise for one stage of two checked calls, row
// ra of A against row rb of B.
void expect_rows_agree(const std::vector<float>& A, const std::vector<double>& bA, size_t ra,
                       const std::vector<float>& Bv, const std::vector<double>& bB, size_t rb, int width,
                       const std::string& what) {
    int bad = 0;
    for (int i = 0; i < width; ++i) {
        const double a = A[ra * width + i], b = Bv[rb * width + i];
        const double lim = bA[ra * width + i] + bB[rb * width + i];
        if (!(std::fabs(a - b) <= lim) && bad++ < 3)
            ADD_FAILURE() << what << " index " << i << ": " << a << " vs " << b << ", |diff| " << std::fabs(a - b)
                          << " > " << lim;
    }
}

class ModelProps : public ::testing::TestWithParam<Variant> {};

} // namespace

TEST_P(ModelProps, PrefillMatchesOracleUnderTheBound) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(weights_for(GetParam()), 2);
    Rng r(11);
    for (const char* attn : {"flash_prefill", "standard_path"}) {
        s.reset(0);
        ForwardOptions o;
        o.attention = attn;
        StepOutput out = s.run({{0, random_tokens(r, 9, s.w.config.vocab)}}, o);
        DivergenceReport rep = s.check(out);
        EXPECT_TRUE(rep.ok) << attn << ": " << describe(rep);
        EXPECT_EQ(rep.unchecked, 0) << attn;
        double worst = 0;
        for (const auto& st : rep.stages) worst = std::max(worst, st.worst_ratio);
        std::printf("%s %s prefill via %s: worst error/bound %.3g\n", s.engine->name().c_str(),
                    s.w.config.summary().c_str(), attn, worst);
    }
}

TEST_P(ModelProps, DecodeStepEqualsPrefillRow) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(weights_for(GetParam()), 2);
    Rng r(12);
    const std::vector<int> toks = random_tokens(r, 8, s.w.config.vocab);
    StepOutput pre = s.run({{0, toks}});
    DivergenceReport rp = s.check(pre);
    ASSERT_TRUE(rp.ok) << describe(rp);
    for (const char* attn : {"decode", "decode_gqa", "decode_split"}) {
        s.reset(1);
        ForwardOptions o;
        o.attention = attn;
        o.num_splits = 3;
        ASSERT_TRUE(s.check(s.run({{1, {toks[0]}}}, {.attention = "standard_path"})).ok);
        for (size_t t = 1; t < toks.size(); ++t) {
            StepOutput d = s.run({{1, {toks[t]}}}, o);
            DivergenceReport rd = s.check(d);
            ASSERT_TRUE(rd.ok) << attn << " step " << t << ": " << describe(rd);
            const int L = s.w.config.layers;
            for (int l = 0; l < L; ++l)
                expect_rows_agree(d.trace->at(l, Stage::resid_ffn), rd.bound(l, Stage::resid_ffn), 0,
                                  pre.trace->at(l, Stage::resid_ffn), rp.bound(l, Stage::resid_ffn), t,
                                  s.w.config.hidden,
                                  std::string(attn) + " layer " + std::to_string(l) + " token " + std::to_string(t));
            expect_rows_agree(d.logits, rd.bound(L, Stage::logits), 0, pre.logits, rp.bound(L, Stage::logits), t,
                              s.w.config.vocab, std::string(attn) + " logits token " + std::to_string(t));
        }
    }
}

TEST_P(ModelProps, ChunkedPrefillEqualsOneShot) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(weights_for(GetParam()), 2);
    Rng r(13);
    const std::vector<int> toks = random_tokens(r, 10, s.w.config.vocab);
    StepOutput one = s.run({{0, toks}});
    DivergenceReport r1 = s.check(one);
    ASSERT_TRUE(r1.ok) << describe(r1);
    size_t at = 0;
    for (size_t len : {3u, 1u, 4u, 2u}) {
        std::vector<int> chunk(toks.begin() + static_cast<long>(at), toks.begin() + static_cast<long>(at + len));
        StepOutput c = s.run({{1, chunk}}, {.attention = len == 1 ? "decode_gqa" : "flash_prefill"});
        DivergenceReport rc = s.check(c);
        ASSERT_TRUE(rc.ok) << "chunk at " << at << ": " << describe(rc);
        for (size_t i = 0; i < len; ++i)
            expect_rows_agree(c.logits, rc.bound(s.w.config.layers, Stage::logits), i, one.logits,
                              r1.bound(s.w.config.layers, Stage::logits), at + i, s.w.config.vocab,
                              "chunked logits position " + std::to_string(at + i));
        at += len;
    }
}

TEST_P(ModelProps, AttentionFamiliesAgreeLayerByLayer) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(weights_for(GetParam()), 2);
    Rng r(14);
    const std::vector<int> toks = random_tokens(r, 7, s.w.config.vocab);
    StepOutput a = s.run({{0, toks}}, {.attention = "flash_prefill"});
    StepOutput b = s.run({{1, toks}}, {.attention = "standard_path"});
    DivergenceReport ra = s.check(a), rb = s.check(b);
    ASSERT_TRUE(ra.ok) << describe(ra);
    ASSERT_TRUE(rb.ok) << describe(rb);
    for (int l = 0; l < s.w.config.layers; ++l)
        for (Stage st : {Stage::attn_out, Stage::resid_attn, Stage::resid_ffn})
            for (size_t t = 0; t < toks.size(); ++t)
                expect_rows_agree(a.trace->at(l, st), ra.bound(l, st), t, b.trace->at(l, st), rb.bound(l, st), t,
                                  stage_width(s.w.config, st),
                                  std::string("fused vs standard, layer ") + std::to_string(l) + " " + stage_name(st));
    // Split vs not: one decode step over the same cache.
    StepOutput d1 = s.run({{0, {3}}}, {.attention = "decode_split", .num_splits = 1});
    StepOutput d4 = s.run({{1, {3}}}, {.attention = "decode_split", .num_splits = 4});
    DivergenceReport r1 = s.check(d1), r4 = s.check(d4);
    ASSERT_TRUE(r1.ok) << describe(r1);
    ASSERT_TRUE(r4.ok) << describe(r4);
    for (int l = 0; l < s.w.config.layers; ++l)
        expect_rows_agree(d1.trace->at(l, Stage::resid_ffn), r1.bound(l, Stage::resid_ffn), 0,
                          d4.trace->at(l, Stage::resid_ffn), r4.bound(l, Stage::resid_ffn), 0, s.w.config.hidden,
                          "split 1 vs 4, layer " + std::to_string(l));
}

TEST_P(ModelProps, BatchOfDifferentLengthsEqualsEachAlone) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(weights_for(GetParam()), 6);
    Rng r(15);
    const int V = s.w.config.vocab;
    const std::vector<std::vector<int>> pre = {random_tokens(r, 5, V), random_tokens(r, 2, V), random_tokens(r, 7, V)};
    const std::vector<std::vector<int>> next = {random_tokens(r, 3, V), random_tokens(r, 1, V), random_tokens(r, 2, V)};
    // Batched: slots 0..2; alone: slots 3..5.
    StepOutput b0 = s.run({{0, pre[0]}, {1, pre[1]}, {2, pre[2]}});
    ASSERT_TRUE(s.check(b0).ok);
    StepOutput b1 = s.run({{0, next[0]}, {1, next[1]}, {2, next[2]}});
    DivergenceReport rb = s.check(b1);
    ASSERT_TRUE(rb.ok) << describe(rb);
    size_t row = 0;
    for (int i = 0; i < 3; ++i) {
        s.run({{3 + i, pre[static_cast<size_t>(i)]}});
        StepOutput a = s.run({{3 + i, next[static_cast<size_t>(i)]}});
        DivergenceReport ra = s.check(a);
        ASSERT_TRUE(ra.ok) << describe(ra);
        for (size_t t = 0; t < next[static_cast<size_t>(i)].size(); ++t, ++row)
            expect_rows_agree(b1.logits, rb.bound(s.w.config.layers, Stage::logits), row, a.logits,
                              ra.bound(s.w.config.layers, Stage::logits), t, V,
                              "batched vs alone, sequence " + std::to_string(i));
    }
}

// Greedy generation, then a traced replay of the same calls: every step is
// within the observed bound of the oracle, so wherever the oracle's top
// logit beats every other by more than both bounds the engine's token must
// be the oracle's.
TEST_P(ModelProps, GreedyTokensEqualTheOraclesWhereTheMarginExceedsTheBound) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights w = weights_for(GetParam(), 3);
    auto gen_engine = make_engine(w, 1);
    Rng r(16);
    const std::vector<int> prompt = random_tokens(r, 4, w.config.vocab);
    const std::vector<int> gen = greedy_generate(*gen_engine, 0, prompt, 10);
    ASSERT_EQ(gen.size(), 10u);
    Session s(w, 1);
    const int V = w.config.vocab;
    StepOutput out = s.run({{0, prompt}});
    int decided = 0;
    for (size_t i = 0; i < gen.size(); ++i) {
        DivergenceReport rep = s.check(out);
        ASSERT_TRUE(rep.ok) << "step " << i << ": " << describe(rep);
        const size_t row = out.rows.size() - 1;
        ASSERT_EQ(out.argmax(row), gen[i]) << "step " << i << ": traced replay picked another token (not repeatable)";
        const OracleTrace o = model_oracle_forward(w, s.history[0]);
        int top = -1;
        if (greedy_decided(o.row(w.config.layers, Stage::logits, o.len - 1, V),
                           &rep.bound(w.config.layers, Stage::logits)[row * V], V, &top)) {
            ++decided;
            EXPECT_EQ(gen[i], top) << "step " << i << ": margin exceeds the bound, yet the engine picked " << gen[i];
        }
        out = s.run({{0, {gen[i]}}});
    }
    std::printf("%s: %d of %zu greedy steps decided by the margin\n", w.config.summary().c_str(), decided, gen.size());
    // The check is vacuous if no step is decided; fp32 bounds are far below
    // typical margins.
    if (GetParam().dtype == DType::f32) {
        EXPECT_GE(decided, 5);
    }
}

TEST_P(ModelProps, OutliersStayWithinTheBoundAndFinite) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    RandomWeightOptions o;
    o.seed = 4;
    o.massive_channels = {3, 77};
    o.massive_value = 40.0;
    o.qk_bias_norm = GetParam().arch == ModelArch::qwen2 ? 100.0 : 0.0;
    Session s(random_weights(tiny_config(GetParam().arch, GetParam().dtype), o), 1);
    Rng r(17);
    StepOutput out = s.run({{0, random_tokens(r, 9, s.w.config.vocab)}});
    for (float z : out.logits) ASSERT_TRUE(std::isfinite(z));
    DivergenceReport rep = s.check(out);
    EXPECT_TRUE(rep.ok) << describe(rep);
    std::printf("outliers: %s; %lld elements without a meaningful bound\n", rep.summary().c_str(), rep.unchecked);
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelProps,
                         ::testing::Values(Variant{ModelArch::llama, DType::f32}, Variant{ModelArch::qwen2, DType::f32},
                                           Variant{ModelArch::llama, DType::bf16},
                                           Variant{ModelArch::qwen2, DType::f16}),
                         vname);

// Bad calls are refused with a reason, and leave the cache as it was.
TEST(ModelEngineErrors, BadCallsAreRefusedWithAReason) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights w = random_weights(tiny_config(ModelArch::llama, DType::f32));
    auto e = make_engine(w, 2);
    auto refused = [&](const std::vector<SeqChunk>& b, ForwardOptions o, const std::string& needle) {
        try {
            e->forward(b, o);
            ADD_FAILURE() << "accepted; expected a refusal mentioning \"" << needle << "\"";
        } catch (const ModelError& x) {
            EXPECT_NE(std::string(x.what()).find(needle), std::string::npos) << x.what();
        }
    };
    refused({{0, {97}}}, {}, "outside the vocabulary");
    refused({{0, {-1}}}, {}, "outside the vocabulary");
    refused({{2, {1}}}, {}, "slot 2 outside");
    refused({{0, {1}}, {0, {2}}}, {}, "appears twice");
    refused({{0, {}}}, {}, "empty chunk");
    refused({}, {}, "empty batch");
    refused({{0, {1, 2}}}, {.attention = "decode"}, "one query token");
    refused({{0, {1, 2}}}, {.attention = "no_such_family"}, "unknown attention family");
    EXPECT_EQ(e->cache_len(0), 0);
    e->forward({{0, {1, 2, 3}}});
    refused({{0, {4, 5}}}, {.attention = "decode_gqa"}, "one query token");
    EXPECT_EQ(e->cache_len(0), 3);
}

// Meta/GGUF-style interleaved RoPE: the engine follows the config's pairing
// and the oracle computes RoPE from its definition with the same pairing;
// the wrong-pairing mutant (rotate-half on this model) is caught at q_rope.
TEST(ModelRope, InterleavedPairingMatchesTheOracleAndTheMutantIsCaught) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    for (DType dt : {DType::f32, DType::bf16}) {
        ModelConfig c = tiny_config(ModelArch::llama, dt);
        c.rope_pairing = RopePairing::interleaved;
        RandomWeightOptions o;
        o.seed = 6;
        const ModelWeights w = random_weights(c, o);
        Rng r(18);
        const std::vector<int> toks = random_tokens(r, 7, c.vocab);
        Session s(w, 1);
        DivergenceReport a = s.check(s.run({{0, toks}}));
        EXPECT_TRUE(a.ok) << dtype_name(dt) << ": " << describe(a);
        DivergenceReport b = s.check(s.run({{0, {2}}}));
        EXPECT_TRUE(b.ok) << dtype_name(dt) << ": " << describe(b);
        Session m(w, 1, ModelMutant::rope_wrong_pairing);
        DivergenceReport bad = m.check(m.run({{0, toks}}));
        ASSERT_FALSE(bad.ok) << dtype_name(dt);
        EXPECT_EQ(bad.first->layer, 0);
        EXPECT_EQ(bad.first->stage, Stage::q_rope) << bad.summary();
    }
}

// ---- mutants: each caught, at the layer and stage where it acts
class ModelMutants : public ::testing::TestWithParam<std::tuple<ModelMutant, DType>> {};

TEST_P(ModelMutants, KilledAtItsLayerAndStage) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const auto [m, dt] = GetParam();
    const ModelMutantInfo* info = nullptr;
    for (const auto& i : all_model_mutants())
        if (i.id == m) info = &i;
    ASSERT_NE(info, nullptr);
    // Qwen2 so that the bias mutant has biases to drop.
    RandomWeightOptions o;
    o.seed = 21;
    const ModelWeights w = random_weights(tiny_config(ModelArch::qwen2, dt), o);
    Rng r(22);
    const std::vector<int> prompt = random_tokens(r, 6, w.config.vocab);
    // The same scenario for production and mutant: a prefill, then a decode
    // step (the cache append a mutant may get wrong).
    std::optional<DivergenceReport> caught;
    for (ModelMutant which : {ModelMutant::none, m}) {
        Session s(w, 1, which);
        DivergenceReport a = s.check(s.run({{0, prompt}}));
        DivergenceReport b = s.check(s.run({{0, {5}}}));
        if (which == ModelMutant::none) {
            ASSERT_TRUE(a.ok && b.ok) << "production fails the scenario: " << describe(a.ok ? b : a);
        } else
            caught = !a.ok ? a : b;
    }
    ASSERT_FALSE(caught->ok) << info->name << " survived";
    const StageCheck& f = *caught->first;
    std::printf("%s (%s): %s\n", info->name, dtype_name(dt), caught->summary().c_str());
    EXPECT_EQ(f.layer, model_mutant_layer(m, w.config.layers)) << caught->summary();
    EXPECT_EQ(std::string(stage_name(f.stage)), info->first_stage) << caught->summary();
}

INSTANTIATE_TEST_SUITE_P(All, ModelMutants,
                         ::testing::Combine(::testing::Values(ModelMutant::rope_wrong_pairing,
                                                              ModelMutant::qkv_bias_dropped, ModelMutant::residual_lost,
                                                              ModelMutant::kv_cache_wrong_position,
                                                              ModelMutant::fused_k_wrong_layout),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         [](const auto& i) {
                             return std::string(model_mutant_name(std::get<0>(i.param))) + "_" +
                                    dtype_name(std::get<1>(i.param));
                         });

// The bound must be tight enough to matter: an RMSNorm dividing by n - 1
// instead of n (relative error 1/(2n) in every normalized value) must leave
// it in fp32. Simulated by perturbing one traced stage of a correct call.
TEST(ModelBound, CatchesAnRmsNormOffByOneInFp32) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    Session s(random_weights(tiny_config(ModelArch::llama, DType::f32)), 1);
    Rng r(23);
    StepOutput out = s.run({{0, random_tokens(r, 5, s.w.config.vocab)}});
    const double n = s.w.config.hidden;
    for (float& x : out.trace->at(1, Stage::ffn_norm)) x = static_cast<float>(x * std::sqrt(n / (n - 1)));
    DivergenceReport rep = s.check(out);
    ASSERT_FALSE(rep.ok);
    EXPECT_EQ(rep.first->layer, 1);
    EXPECT_EQ(rep.first->stage, Stage::ffn_norm) << rep.summary();
}

#ifndef ATTNCHECK_TEST_CUDA
// The oracle's own accuracy: fp64 against 50-digit arithmetic on a tiny
// configuration. Its error must be negligible next to the smallest bound it
// is used with (fp32 stages, relative ~1e-7): we ask for 1e-12 relative to
// each stage's magnitude.
TEST(ModelOracle, Fp64AgreesWithMultiprecision) {
    ModelConfig c = tiny_config(ModelArch::qwen2, DType::bf16);
    c.layers = 1;
    c.ffn = 64;
    c.vocab = 13;
    RandomWeightOptions o;
    o.seed = 9;
    o.qk_bias_norm = 50;
    const ModelWeights w = random_weights(c, o);
    const std::vector<int> toks = {3, 1, 4, 1, 5};
    const OracleTrace a = model_oracle_forward(w, toks);
    const OracleTrace b = model_oracle_forward_t<boost::multiprecision::cpp_bin_float_50>(w, toks);
    for (int l = 0; l <= c.layers; ++l)
        for (int s = 0; s < kStages; ++s) {
            const auto& x = a.values[static_cast<size_t>(l) * kStages + s];
            const auto& y = b.values[static_cast<size_t>(l) * kStages + s];
            ASSERT_EQ(x.size(), y.size());
            double mag = 0, diff = 0;
            for (size_t i = 0; i < x.size(); ++i) {
                mag = std::max(mag, std::fabs(y[i]));
                diff = std::max(diff, std::fabs(x[i] - y[i]));
            }
            EXPECT_LE(diff, 1e-12 * mag) << "layer slot " << l << " stage " << stage_name(static_cast<Stage>(s));
        }
}
#endif
