// The adapter's capabilities JSON (docs/adapter-protocol.md): per-dtype
// precision profiles, and clear errors for malformed ones.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "properties/campaign/external_model.hpp"
#include "properties/campaign/external_target.hpp"

using namespace attncheck;

namespace {

const char* kBase = R"({"name": "t", "protocol": 1, "dtypes": ["fp16", "fp32"], )";

std::string caps(const std::string& rest) { return std::string(kBase) + rest + "}"; }

} // namespace

TEST(AdapterCapabilities, PerDtypeProfilesOverrideTheCommonOne) {
    const AdapterCapabilities c =
        parse_capabilities(caps(R"("profile": {"u_acc": 5.96e-8, "exp_ulps": 2, "scores_stored": true},
            "profiles": {"fp16": {"u_acc": 1.19e-7, "probs_stored": true, "store": "fp16", "output": "fp16",
                                  "kv_tile": 64}})"));
    EXPECT_DOUBLE_EQ(c.profile.u_acc, 5.96e-8);
    ASSERT_EQ(c.profiles_by_dtype.count(DType::f16), 1u);
    const PrecisionProfile& h = c.profiles_by_dtype.at(DType::f16);
    EXPECT_DOUBLE_EQ(h.u_acc, 1.19e-7);
    EXPECT_TRUE(h.probs_stored);
    EXPECT_EQ(h.store, DType::f16);
    EXPECT_EQ(h.output, DType::f16);
    EXPECT_EQ(h.kv_tile, 64);
    EXPECT_DOUBLE_EQ(h.exp_ulps, 2.0) << "fields a per-dtype profile leaves out come from the common one";
    EXPECT_TRUE(h.scores_stored) << "fields a per-dtype profile leaves out come from the common one";
    EXPECT_TRUE(c.profile.scores_stored);
    EXPECT_FALSE(c.profile.probs_stored);
    EXPECT_EQ(c.profiles_by_dtype.count(DType::f32), 0u);
}

TEST(AdapterCapabilities, MalformedProfilesAreRefusedByName) {
    auto refused = [](const std::string& text, const std::string& needle) {
        try {
            parse_capabilities(text);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what()).find(needle) != std::string::npos;
        }
        return false;
    };
    EXPECT_TRUE(refused(caps(R"("profiles": {"fp8": {}})"), "profiles.fp8: unknown dtype"));
    EXPECT_TRUE(refused(caps(R"("profiles": {"fp16": {"u_acc": 0.5}})"), "profiles.fp16.u_acc"));
    EXPECT_TRUE(refused(caps(R"("profiles": [1])"), "profiles must be an object"));
    EXPECT_TRUE(refused(caps(R"("profiles": {"bf16": 3})"), "profiles.bf16 must be an object"));
    EXPECT_TRUE(refused(caps(R"("profile": {"store": "int8"})"), "profile.store: unknown dtype"));
}

// A model adapter's capabilities, and the case it is given: mapped to what
// it takes, the same way every time.
TEST(ModelAdapterCapabilities, RestrictMapsACaseToWhatTheAdapterTakes) {
    const ModelAdapterCapabilities caps = parse_model_capabilities(
        R"({"name": "m", "protocol": 1, "kind": "model", "archs": ["llama"], "dtypes": ["fp32"],
            "precision": "fp32", "hidden_divisible_by_heads": true})");
    EXPECT_TRUE(caps.hidden_divisible_by_heads);
    ModelCase c;
    c.config.arch = ModelArch::qwen2;
    c.config.qkv_bias = true;
    c.config.dtype = DType::bf16;
    c.config.hidden = 128;
    c.config.n_q_heads = 3;
    c.config.n_kv_heads = 1;
    const ModelCase r = restrict_to(caps, c);
    EXPECT_EQ(r.config.arch, ModelArch::llama);
    EXPECT_FALSE(r.config.qkv_bias) << "a Llama's Hugging Face form has no Q/K/V biases";
    EXPECT_EQ(r.config.dtype, DType::f32);
    EXPECT_EQ(r.config.hidden, 129) << "rounded up to a multiple of the 3 heads";
    EXPECT_EQ(model_case_to_json(restrict_to(caps, c)), model_case_to_json(r)) << "deterministic";
    ModelAdapterCapabilities lax = caps;
    lax.hidden_divisible_by_heads = false;
    EXPECT_EQ(restrict_to(lax, c).config.hidden, 128);
    EXPECT_THROW(parse_model_capabilities(R"({"name": "m", "protocol": 1, "kind": "model", "archs": ["gpt2"],
                                              "dtypes": ["fp32"], "precision": "fp32"})"),
                 std::invalid_argument);
}

// run_batch's capabilities: how many runs a message may carry, and whether
// the adapter can map attncheck's CUDA IPC buffer.
TEST(AdapterCapabilities, BatchAndCudaIpc) {
    const AdapterCapabilities plain = parse_capabilities(caps(R"("profile": {"u_acc": 5.96e-8})"));
    EXPECT_EQ(plain.max_batch, 1) << "one run a message unless the adapter says otherwise";
    EXPECT_FALSE(plain.cuda_ipc);
    const AdapterCapabilities batched = parse_capabilities(caps(R"("max_batch": 16, "cuda_ipc": true)"));
    EXPECT_EQ(batched.max_batch, 16);
    EXPECT_TRUE(batched.cuda_ipc);
    for (const char* bad : {R"("max_batch": 0)", R"("max_batch": 5000)"})
        EXPECT_THROW(parse_capabilities(caps(bad)), std::invalid_argument) << bad;
}
