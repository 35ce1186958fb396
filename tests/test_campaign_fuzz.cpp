// The pieces of `attncheck campaign --fuzzer` that need no fuzzer: reading
// libFuzzer's status lines, and folding a fuzzing round's out folder
// (tallies files and counterexamples) into the campaign's state.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "properties/campaign/campaign_dir.hpp"
#include "properties/campaign/libfuzzer_log.hpp"
#include "properties/campaign/parallel_run.hpp"

using namespace attncheck;
namespace fs = std::filesystem;

TEST(LibFuzzerLog, ReadsTheLastForkModeStatusLine) {
    const std::string log =
        "INFO: Seed: 1\n"
        "#5307: cov: 7001 ft: 8123 corp: 190 exec/s 2653 oom/timeout/crash: 0/0/0 time: 3s job: 1 dft_time: 0\n"
        "  NEW_FUNC: 0x55 in f() x.cpp:1\n"
        "#19902: cov: 7246 ft: 8454 corp: 209 exec/s 3074 oom/timeout/crash: 0/1/2 time: 7s job: 3 dft_time: 0\n"
        "INFO: exiting: 0 time: 7s\n";
    const auto s = last_libfuzzer_stats(log);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->execs, 19902);
    EXPECT_EQ(s->coverage, 7246);
    EXPECT_EQ(s->features, 8454);
    EXPECT_EQ(s->corpus, 209);
    EXPECT_EQ(s->execs_per_s, 3074);
    EXPECT_EQ(s->crashes, 2);
    EXPECT_EQ(s->seconds, 7);
    const auto all = libfuzzer_stats(log);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].execs, 5307);
    EXPECT_EQ(all[0].seconds, 3);
}

TEST(LibFuzzerLog, ReadsAPlainRunAndIgnoresNoise) {
    const std::string log =
        "#2\tINITED cov: 3 ft: 4 corp: 1/1b exec/s: 0 rss: 27Mb\n"
        "#1024\tpulse  cov: 30 ft: 41 corp: 12/300b lim: 4 exec/s: 512 rss: 30Mb\n"
        "#1100\tNEW    cov: 31 ft: 44 corp: 13/310b lim: 4 exec/s: 550 rss: 30Mb L: 3/4 MS: 1\n"
        "Done 1200 runs in 2 second(s)\n";
    const auto s = last_libfuzzer_stats(log);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->execs, 1100);
    EXPECT_EQ(s->coverage, 31);
    EXPECT_EQ(s->corpus, 13);
    EXPECT_EQ(s->execs_per_s, 550);
    EXPECT_EQ(s->seconds, -1); // a plain run prints no time on its status lines
    EXPECT_FALSE(last_libfuzzer_stats("INFO: Seed: 1\nno status here\n#12 but no figures\n"));
}

namespace {

struct TempDir {
    fs::path p;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "attncheck_fuzzfold_XXXXXX").string();
        p = mkdtemp(t.data());
    }
    ~TempDir() { fs::remove_all(p); }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

} // namespace

TEST(CampaignFuzzFold, SumsTalliesAndKeepsOneFailurePerClass) {
    TempDir t;
    const fs::path out = t.p / "rounds" / "0" / "out";
    fs::create_directories(out);
    std::map<std::string, GateTally> a, b;
    a["parity"].add(GateVerdict::pass("", 0.25));
    a["parity"].add(GateVerdict::pass("", 0.5));
    b["parity"].add(GateVerdict::pass("", 0.125));
    b["causal"].add(GateVerdict::skip("no mask"));
    write(out / "tallies-11.json", nlohmann::json{{"cases", 2}, {"tallies", tallies_json(a)}}.dump());
    write(out / "tallies-12.json", nlohmann::json{{"cases", 1}, {"tallies", tallies_json(b)}}.dump());
    // The same regression twice (two jobs found one bug): one class, seen twice.
    const fs::path ce = fs::path(ATTNCHECK_SOURCE_DIR) / "corpus" / "regressions" /
                        "decode_split-scale_twice-effective_scale-034f0086.json";
    fs::copy_file(ce, out / "decode_split-a.json");
    fs::copy_file(ce, out / "decode_split-b.json");

    CampaignState s;
    EXPECT_EQ(fold_fuzz_out(s, t.p.string(), 0, out.string()), 1);
    EXPECT_EQ(s.cases, 3);
    EXPECT_EQ(s.tallies["parity"].pass, 3);
    EXPECT_DOUBLE_EQ(s.tallies["parity"].worst_ratio, 0.5);
    EXPECT_EQ(s.tallies["causal"].skip, 1);
    ASSERT_EQ(s.failures.size(), 1u);
    EXPECT_EQ(s.failures[0].seen, 2);
    EXPECT_EQ(s.failures[0].gate, "effective_scale");
    EXPECT_TRUE(fs::exists(s.failures[0].file));

    // The fuzzer's figures survive a save and a load; a directory of
    // property rounds (no fuzzer figures) still loads.
    s.execs = 1234;
    s.crash_inputs = 2;
    s.coverage_history.push_back({1.5, 1234, 700, 800, 42});
    s.seconds = 1.5;
    save_campaign_state(t.p.string(), s);
    const CampaignState r = load_campaign_state(t.p.string());
    EXPECT_EQ(r.execs, 1234);
    EXPECT_EQ(r.crash_inputs, 2);
    ASSERT_EQ(r.coverage_history.size(), 1u);
    EXPECT_EQ(r.coverage_history[0].corpus, 42);
    CampaignState plain;
    plain.rounds = 1;
    save_campaign_state((t.p / "plain").string(), plain);
    EXPECT_EQ(load_campaign_state((t.p / "plain").string()).execs, 0);
}
