// The Case: JSON round trip, deterministic materialization, and one test per
// kind of bad input (each must be a CaseError naming the problem).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/case/case.hpp"
#include "engine/case/case_sampler.hpp"
#include "engine/case/problem.hpp"

using namespace attncheck;

namespace {

std::string valid_json() {
    return R"({"version": 1,
      "shape": {"batch": 2, "n_q_heads": 14, "n_kv_heads": 2, "head_dim": 64, "q_lens": [1, 3], "kv_lens": [100, 0]},
      "features": {"causal": true, "window": 0, "num_splits": 3, "scale": null},
      "dtype": "bf16",
      "data": {"dist": "normal", "seed": 18446744073709551615, "k_scale": 2.5, "outlier_channels": [3, 7],
               "outlier_factor": 100, "sink_tokens": 2, "sink_factor": 8,
               "specials": [{"tensor": "v", "seq": 0, "token": 5, "head": 1, "dim": 0, "value": "nan"}]}})";
}

// Replace the first occurrence of `from` in the valid case.
std::string edit(const std::string& from, const std::string& to) {
    std::string s = valid_json();
    const auto pos = s.find(from);
    if (pos == std::string::npos) throw std::logic_error("test edit target not found: " + from);
    return s.replace(pos, from.size(), to);
}

// Expect parse_case to throw a CaseError whose message contains `needle`.
void expect_rejected(const std::string& json, const std::string& needle) {
    try {
        parse_case(json);
        ADD_FAILURE() << "accepted a bad case; expected an error containing '" << needle << "'";
    } catch (const CaseError& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "error message '" << e.what() << "' does not mention '" << needle << "'";
    }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::uint64_t fnv1a(const std::vector<float>& x, std::uint64_t h = 1469598103934665603ull) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(x.data());
    for (size_t i = 0; i < x.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

} // namespace

TEST(Case, ValidCaseParses) {
    const Case c = parse_case(valid_json());
    EXPECT_EQ(c.batch(), 2);
    EXPECT_EQ(c.q_lens, (std::vector<int>{1, 3}));
    EXPECT_EQ(c.data.seed, 18446744073709551615ull);
    EXPECT_EQ(c.dtype, DType::bf16);
    ASSERT_EQ(c.data.specials.size(), 1u);
    EXPECT_TRUE(std::isnan(c.data.specials[0].value));
    EXPECT_DOUBLE_EQ(c.effective_scale(), 0.125);
}

RC_GTEST_PROP(Case, JsonRoundTripIsIdentity, (std::uint64_t seed)) {
    const Case c = sample_wide_case(seed);
    const std::string j = case_to_json(c);
    const Case back = parse_case(j);
    RC_ASSERT(back == c);
    RC_ASSERT(case_to_json(back) == j);
}

RC_GTEST_PROP(Case, MaterializationIsDeterministicAndSurvivesJson, (std::uint64_t seed)) {
    SamplerLimits lim;
    lim.max_work = 20000;
    const Case c = sample_wide_case(seed, lim);
    const AttentionProblem a = materialize(c), b = materialize(parse_case(case_to_json(c)));
    RC_ASSERT(same_bits(a.q, b.q));
    RC_ASSERT(same_bits(a.k, b.k));
    RC_ASSERT(same_bits(a.v, b.v));
    // Every value is exactly representable in the dtype, and none are zero-only.
    for (const auto* t : {&a.q, &a.k, &a.v})
        for (float x : *t) RC_ASSERT(round_to(c.dtype, x) == x || std::isnan(x));
}

TEST(Case, ShrinkingABatchKeepsOtherSequencesData) {
    Case c = parse_case(valid_json());
    c.data.specials.clear();
    const AttentionProblem full = materialize(c);
    Case one = c;
    one.q_lens = {c.q_lens[0]};
    one.kv_lens = {c.kv_lens[0]};
    const AttentionProblem part = materialize(one);
    ASSERT_EQ(part.k.size(), static_cast<size_t>(100 * 2 * 64));
    EXPECT_EQ(std::memcmp(part.k.data(), full.k.data(), part.k.size() * sizeof(float)), 0);
}

TEST(Case, RecipeFeaturesShapeTheData) {
    Case c;
    c.head_dim = 16;
    c.q_lens = {4};
    c.kv_lens = {32};
    c.data.seed = 3;
    c.data.outlier_channels = {5};
    c.data.outlier_factor = 1000;
    c.data.constant_v = true;
    const AttentionProblem p = materialize(c);
    double out = 0, other = 0;
    for (int j = 0; j < 32; ++j) {
        out = std::max(out, std::fabs(static_cast<double>(p.k[p.kv_index(0, j, 0) + 5])));
        for (int ch = 0; ch < 16; ++ch)
            if (ch != 5) other = std::max(other, std::fabs(static_cast<double>(p.k[p.kv_index(0, j, 0) + ch])));
        for (int ch = 0; ch < 16; ++ch) EXPECT_EQ(p.v[p.kv_index(0, j, 0) + ch], p.v[p.kv_index(0, 0, 0) + ch]);
    }
    EXPECT_GT(out, 50 * other);
    // No tensor is all zeros.
    for (const auto* t : {&p.q, &p.k, &p.v}) {
        bool nonzero = false;
        for (float x : *t) nonzero = nonzero || x != 0.0f;
        EXPECT_TRUE(nonzero);
    }
}

TEST(Case, SinkTokensDrawLargePositiveLogits) {
    Case c;
    c.head_dim = 64;
    c.q_lens = {8};
    c.kv_lens = {40};
    c.data.seed = 4;
    c.data.sink_tokens = 2;
    c.data.sink_factor = 10;
    const AttentionProblem p = materialize(c);
    for (int t = 0; t < 8; ++t) {
        double sink = 0, best_other = -1e300;
        for (int j = 0; j < 40; ++j) {
            double s = 0;
            for (int ch = 0; ch < 64; ++ch)
                s += static_cast<double>(p.q[p.q_index(0, t, 0) + ch]) * p.k[p.kv_index(0, j, 0) + ch];
            if (j == 0)
                sink = s;
            else if (j >= 2)
                best_other = std::max(best_other, s);
        }
        EXPECT_GT(sink, best_other) << "query " << t;
    }
}

// Materialized bits recorded on the build machine (g++ 12, Debian): the same
// case must give the same bits with any compiler and libm (checked on the GPU
// machine too, which has a different compiler). A change here means replay
// files from before no longer replay.
TEST(Case, MaterializedBitsArePortable) {
    // ATTNCHECK_SOURCE_DIR in the environment overrides the build-time path
    // (binaries carried to the GPU machine run from another checkout).
    const char* env = std::getenv("ATTNCHECK_SOURCE_DIR");
    const std::string root = env ? env : ATTNCHECK_SOURCE_DIR;
    const Case c = load_case_file(root + "/corpus/cases/qwen_decode_bf16.json");
    const AttentionProblem p = materialize(c);
    const std::uint64_t h = fnv1a(p.v, fnv1a(p.k, fnv1a(p.q)));
    std::ifstream golden(root + "/corpus/cases/qwen_decode_bf16.fnv1a");
    ASSERT_TRUE(golden) << "golden hash file missing";
    std::uint64_t expect = 0;
    golden >> std::hex >> expect;
    EXPECT_EQ(h, expect) << std::hex << "materialized hash " << h;
}

// ---- bad input: one test per rule

TEST(CaseRejects, MalformedJson) { expect_rejected("{\"version\": 1, \"shape\": ", "malformed JSON"); }
TEST(CaseRejects, NotAnObject) { expect_rejected("[1, 2]", "must be a JSON object"); }
TEST(CaseRejects, UnknownTopLevelField) {
    expect_rejected(edit("\"dtype\"", "\"colour\": 3, \"dtype\""), "unknown field 'colour'");
}
TEST(CaseRejects, UnknownNestedField) {
    expect_rejected(edit("\"head_dim\"", "\"hidden\": 3, \"head_dim\""), "unknown field 'shape.hidden'");
}
TEST(CaseRejects, MissingField) {
    expect_rejected(edit("\"n_kv_heads\": 2,", ""), "missing required field 'shape.n_kv_heads'");
}
TEST(CaseRejects, MissingLengths) {
    expect_rejected(edit("\"kv_lens\": [100, 0]", "\"kv\": 0"), "missing required field 'shape.kv_len'");
}
TEST(CaseRejects, NonDivisibleHeads) {
    expect_rejected(edit("\"n_kv_heads\": 2", "\"n_kv_heads\": 3"), "must be a multiple of");
}
TEST(CaseRejects, ZeroHeads) { expect_rejected(edit("\"n_q_heads\": 14", "\"n_q_heads\": 0"), "shape.n_q_heads"); }
TEST(CaseRejects, ZeroHeadDim) { expect_rejected(edit("\"head_dim\": 64", "\"head_dim\": 0"), "shape.head_dim"); }
TEST(CaseRejects, AbsurdHeadDim) {
    expect_rejected(edit("\"head_dim\": 64", "\"head_dim\": 100000"), "shape.head_dim");
}
TEST(CaseRejects, AbsurdLength) { expect_rejected(edit("[100, 0]", "[100000000, 0]"), "kv_lens[0]"); }
TEST(CaseRejects, AbsurdTotalSize) {
    expect_rejected(edit("[1, 3]", "[1000000, 1000000]"), "case too large"); // 2e6 x 14 x 64 Q elements
}
TEST(CaseRejects, NegativeLength) { expect_rejected(edit("[1, 3]", "[1, -3]"), "q_lens[1]"); }
TEST(CaseRejects, LengthListOfWrongSize) { expect_rejected(edit("[1, 3]", "[1, 3, 4]"), "has 3 entries"); }
TEST(CaseRejects, BothScalarAndListLength) {
    expect_rejected(edit("\"q_lens\"", "\"q_len\": 1, \"q_lens\""), "not both");
}
TEST(CaseRejects, ZeroBatch) { expect_rejected(edit("\"batch\": 2", "\"batch\": 0"), "shape.batch"); }
TEST(CaseRejects, WrongType) {
    expect_rejected(edit("\"head_dim\": 64", "\"head_dim\": \"64\""), "must be an integer");
}
TEST(CaseRejects, FractionalInteger) {
    expect_rejected(edit("\"head_dim\": 64", "\"head_dim\": 64.5"), "must be an integer");
}
TEST(CaseRejects, UnknownDtype) { expect_rejected(edit("\"bf16\"", "\"fp8\""), "dtype must be"); }
TEST(CaseRejects, UnknownDist) { expect_rejected(edit("\"normal\"", "\"cauchy\""), "data.dist"); }
TEST(CaseRejects, NegativeSeed) { expect_rejected(edit("18446744073709551615", "-1"), "data.seed"); }
TEST(CaseRejects, UnsupportedVersion) {
    expect_rejected(edit("\"version\": 1", "\"version\": 2"), "unsupported case format version");
}
TEST(CaseRejects, WindowWithoutCausal) {
    expect_rejected(edit("\"causal\": true, \"window\": 0", "\"causal\": false, \"window\": 4"),
                    "needs features.causal");
}
TEST(CaseRejects, ZeroSplits) {
    expect_rejected(edit("\"num_splits\": 3", "\"num_splits\": 0"), "features.num_splits");
}
TEST(CaseRejects, NonFiniteScale) { expect_rejected(edit("\"scale\": null", "\"scale\": \"inf\""), "features.scale"); }
TEST(CaseRejects, ZeroMagnitude) { expect_rejected(edit("\"k_scale\": 2.5", "\"k_scale\": 0"), "data.k_scale"); }
TEST(CaseRejects, OutlierChannelOutOfRange) { expect_rejected(edit("[3, 7]", "[3, 64]"), "outlier_channels"); }
TEST(CaseRejects, OutlierChannelTwice) { expect_rejected(edit("[3, 7]", "[3, 3]"), "listed twice"); }
TEST(CaseRejects, SpecialOutOfRange) {
    expect_rejected(edit("\"token\": 5", "\"token\": 100"), "data.specials[0].token");
}
TEST(CaseRejects, RecipeOverflowsFp16) {
    std::string j = edit("\"bf16\"", "\"fp16\"");
    j.replace(j.find("\"k_scale\": 2.5"), 14, "\"k_scale\": 200"); // 200 * 6 * outlier 100 > 65504
    expect_rejected(j, "above fp16's largest finite value");
}
TEST(CaseRejects, ExplicitValueOverflowsDtype) {
    expect_rejected(
        R"({"version": 1, "shape": {"batch": 1, "n_q_heads": 1, "n_kv_heads": 1, "head_dim": 1, "q_len": 1, "kv_len": 1},
        "dtype": "fp16", "data": {"dist": "normal", "seed": 1}, "values": {"q": [1], "k": [70000], "v": [1]}})",
        "values.k[0] = 70000 overflows fp16");
}
TEST(CaseRejects, ExplicitValuesOfWrongLength) {
    expect_rejected(
        R"({"version": 1, "shape": {"batch": 1, "n_q_heads": 1, "n_kv_heads": 1, "head_dim": 2, "q_len": 1, "kv_len": 1},
        "dtype": "fp32", "data": {"dist": "normal", "seed": 1}, "values": {"q": [1, 2], "k": [1], "v": [1, 2]}})",
        "values.k has 1 numbers; the shape needs 2");
}
TEST(CaseRejects, MissingFileIsAClearError) { EXPECT_THROW(load_case_file("/nonexistent/case.json"), CaseError); }
// Found by the fuzz_case_json campaign: a number too large for a double made
// nlohmann throw out_of_range, which escaped as a crash.
TEST(CaseRejects, NumberOverflowIsMalformedJson) {
    expect_rejected(edit("\"k_scale\": 2.5", "\"k_scale\": 1e444"), "malformed JSON");
}
