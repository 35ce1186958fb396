// The adapter's capabilities JSON (docs/adapter-protocol.md): per-dtype
// precision profiles, and clear errors for malformed ones.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

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
