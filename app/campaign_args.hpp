// The options of `attncheck campaign` (app/campaign_command.cpp), shared
// with its libFuzzer rounds (app/campaign_fuzzer.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "properties/campaign/campaign_dir.hpp"

namespace attncheck {

struct CampaignArgs {
    std::string dir, backend, mutant = "none", devices;
    std::vector<std::string> targets, merge;
    double seconds = 600, round_seconds = 60;
    int workers = 0, processes = 1;
    std::uint64_t seed = 1;
    bool stop_at_first = false; // end after the round that found the first failure
    // --fuzzer: rounds run this libFuzzer binary in fork mode instead of `attncheck run`.
    std::string fuzzer, model_mutant;
    std::vector<std::string> seed_corpora;
    int max_len = 8192;
};

// What one round did: the child's exit status (-signal when one killed it),
// whether that counts as a crash of the round itself, the failure classes
// it added, and a few words for the status line.
struct RoundOutcome {
    int rc = 0;
    bool died = false;
    int fresh = 0;
    std::string note;
};

// One fuzzing round K of `seconds` into round directory `rd`: libFuzzer in
// fork mode over DIR/corpus (one fork parent per CUDA device with
// --devices), its crashed inputs into DIR/crashes, its counterexamples and
// tallies folded into `s`, then the corpus merged and minimized.
RoundOutcome fuzz_round(const CampaignArgs& a, CampaignState& s, long long k, double seconds, const std::string& rd);

} // namespace attncheck
