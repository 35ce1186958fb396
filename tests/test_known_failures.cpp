// The known-failure ledger (properties/campaign/known_failures.hpp): bad
// files are refused with the file, entry and field named; predicates match
// what they say; a campaign counts a listed failure as known and goes on,
// still fails on an unlisted one; an entry whose recorded case no longer
// fails is stale.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/known_failures.hpp"

namespace attncheck {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
    const std::string path = ::testing::TempDir() + name;
    std::ofstream(path) << text;
    return path;
}

std::string load_error(const std::string& text) {
    try {
        load_ledger(write_temp("ledger_bad.json", text));
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST(KnownFailures, BadFilesAreRefusedWithTheReason) {
    EXPECT_NE(load_error("{").find("not JSON"), std::string::npos);
    EXPECT_NE(load_error(R"({"entries": []})").find("version"), std::string::npos);
    EXPECT_NE(load_error(R"({"version": 1, "entries": [{"gate": "causal", "reason": "r"}]})").find("'target'"),
              std::string::npos);
    EXPECT_NE(load_error(R"({"version": 1, "entries": [{"target": "decode", "gate": "nope", "reason": "r"}]})")
                  .find("unknown gate 'nope'"),
              std::string::npos);
    EXPECT_NE(load_error(R"({"version": 1, "entries": [{"target": "decode", "gate": "causal", "reason": "r",
                             "when": {"colour": true}}]})")
                  .find("when.colour"),
              std::string::npos);
    EXPECT_NE(load_error(R"({"version": 1, "entries": [{"target": "decode", "gate": "causal", "reason": "r",
                             "when": {"head_dim": [64, 8]}}]})")
                  .find("lo <= hi"),
              std::string::npos);
    EXPECT_NE(load_error(R"({"version": 1, "entries": [{"target": "decode", "gate": "causal", "reason": "r",
                             "bogus": 1}]})")
                  .find("unknown key 'bogus'"),
              std::string::npos);
    EXPECT_THROW(load_ledger("/nonexistent/ledger.json"), std::invalid_argument);
}

TEST(KnownFailures, PredicatesMatchWhatTheySay) {
    const Ledger l = load_ledger(write_temp("ledger_pred.json", R"({"version": 1, "entries": [
        {"target": "decode", "gate": "parity", "reason": "bf16 GQA with long heads",
         "when": {"dtype": ["bf16"], "gqa": true, "head_dim": [128, 256], "causal": false}}]})"));
    auto t = make_target("decode", Backend::cpu);
    Case c;
    c.n_q_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 128;
    c.dtype = DType::bf16;
    EXPECT_EQ(l.match(*t, "parity", c), 0);
    EXPECT_EQ(l.match(*t, "causal", c), -1); // another gate
    Case d = c;
    d.dtype = DType::f16;
    EXPECT_EQ(l.match(*t, "parity", d), -1);
    d = c;
    d.n_kv_heads = 4;
    EXPECT_EQ(l.match(*t, "parity", d), -1); // not GQA
    d = c;
    d.head_dim = 64;
    EXPECT_EQ(l.match(*t, "parity", d), -1);
    d = c;
    d.causal = true;
    EXPECT_EQ(l.match(*t, "parity", d), -1);
    EXPECT_EQ(l.match(*make_target("flash_prefill", Backend::cpu), "parity", c), -1); // another target
}

std::string every_gate_ledger(const std::string& target, const std::string& when) {
    std::string entries;
    for (const Gate& g : all_gates())
        entries += std::string(entries.empty() ? "" : ",") + R"({"target": ")" + target + R"(", "gate": ")" + g.name +
                   R"(", "reason": "the scale_twice mutant")" + when + "}";
    return R"({"version": 1, "entries": [)" + entries + "]}";
}

TEST(KnownFailures, ACampaignCountsListedFailuresAndGoesOn) {
    auto t = make_target("decode", Backend::cpu, Mutant::scale_twice);
    const Ledger l = load_ledger(write_temp("ledger_all.json", every_gate_ledger("decode", "")));
    CampaignOptions o;
    o.cases = 60;
    o.ledger = &l;
    const CampaignResult r = run_campaign(*t, o);
    EXPECT_FALSE(r.failure) << r.failure->gate << ": " << r.failure->summary;
    long long known = 0;
    for (const auto& [k, n] : r.known) known += n;
    EXPECT_GT(known, 0) << "the mutant failed no case";
}

TEST(KnownFailures, AnUnlistedFailureStillFails) {
    auto t = make_target("decode", Backend::cpu, Mutant::scale_twice);
    // Listed only for head dims the campaign never draws.
    const Ledger l = load_ledger(
        write_temp("ledger_narrow.json", every_gate_ledger("decode", R"(, "when": {"head_dim": [2000, 3000]})")));
    CampaignOptions o;
    o.cases = 200;
    o.ledger = &l;
    const CampaignResult r = run_campaign(*t, o);
    ASSERT_TRUE(r.failure);
    EXPECT_TRUE(r.known.empty());
}

TEST(KnownFailures, AnEntryWhoseCaseNoLongerFailsIsStale) {
    const std::string cx = std::string(ATTNCHECK_SOURCE_DIR) +
                           "/corpus/regressions/decode_split-scale_twice-effective_scale-034f0086.json";
    const Ledger l = load_ledger(write_temp("ledger_stale.json", R"({"version": 1, "entries": [
        {"target": "decode_split", "gate": "effective_scale", "reason": "scale applied twice", "case": ")" +
                                                                     cx + R"("}]})"));
    std::vector<std::unique_ptr<Target>> fixed;
    fixed.push_back(make_target("decode_split", Backend::cpu)); // the production build: fixed
    const auto stale = stale_entries(l, fixed);
    ASSERT_EQ(stale.size(), 1u);
    EXPECT_EQ(stale[0].entry, 0);
    std::vector<std::unique_ptr<Target>> still_broken;
    still_broken.push_back(make_target("decode_split", Backend::cpu, Mutant::scale_twice));
    EXPECT_TRUE(stale_entries(l, still_broken).empty());
}

} // namespace
} // namespace attncheck
