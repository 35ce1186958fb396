// A property campaign: RapidCheck draws cases for one target (gen_case with
// the target's capabilities), every gate runs on each, and the first failure
// is shrunk by RapidCheck to a minimal case that still fails the same gate
// (or an earlier one). Runs in rounds of seeds so that a time budget can
// stop it between rounds; each round is one rc check with its own seed.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "properties/campaign/generators.hpp"
#include "properties/campaign/known_failures.hpp"
#include "properties/gates/case_check.hpp"

namespace attncheck {

struct GateTally {
    long long pass = 0, fail = 0, skip = 0;
    // Verdicts that compared against the error model (GateVerdict::ratio),
    // by ratio_bucket, and the largest ratio (-1: none).
    std::array<long long, kRatioBuckets> ratios{};
    double worst_ratio = -1;
    // The worst row: the case it came from (its shape, and the case as JSON
    // for `attncheck repro`) and the verdict that named it.
    std::string worst_shape, worst_case, worst_detail;
    // `c`: the case the verdict is on (for the worst row; may be null).
    void add(const GateVerdict& v, const Case* c = nullptr);
};
// Adds every gate's tally of `from` into `into`.
void add_tallies(std::map<std::string, GateTally>& into, const std::map<std::string, GateTally>& from);

struct Counterexample {
    Case kase;
    std::string target; // family name
    Backend backend = Backend::cpu;
    Mutant mutant = Mutant::none;
    std::string gate;
    std::string summary; // the gate's verdict on the shrunk case
    std::string report;  // failure_report of the shrunk case
    std::uint64_t seed = 0;
    int shrink_steps = 0; // candidates that still failed while shrinking
    // The shapes the failure went through, first found to shrunk (each
    // failing shrink step whose shape changed: case_shape_summary).
    std::vector<std::string> shrink_trajectory;
};

// The counterexample of a failed check of case c on target t, with its full
// failure report (gate numbers and stage report).
Counterexample counterexample_of(Target& t, const Case& c, const GateOutcome& failed);

// Who draws the cases. RapidCheck: its generator, its size ramp (early cases
// small), its shrinking; one campaign at a time per process (RapidCheck's
// state is global). Seeded: case i is build_case over a SeededChooser of
// case_seed(seed, i), every draw recorded; a failure is then shrunk by
// RapidCheck from that record (under a process-wide lock). Campaigns in
// worker threads use it: only shrinking is serialized.
enum class Drawer { rapidcheck, seeded };

std::uint64_t case_seed(std::uint64_t campaign_seed, long long i);

struct CampaignOptions {
    Drawer drawer = Drawer::rapidcheck;
    std::uint64_t seed = 1;
    long long cases = 100;          // stop after this many passing cases...
    double seconds = 0;             // ... or after this long (0: no time limit)
    std::vector<const Gate*> gates; // empty: all
    GenLimits limits;
    bool shrink = true;
    // Cases per RapidCheck round; a time budget is looked at only between
    // rounds, so a run under a wall-clock budget with slow cases wants short ones.
    long long round = 50;
    std::function<void(long long cases, double seconds)> progress; // after each case
    // Failures it lists are counted as known and the campaign goes on (they
    // are neither shrunk nor reported as failures).
    const Ledger* ledger = nullptr;
    // With the seeded drawer: cases checked at once on this thread,
    // interleaved on fibers (engine/fiber/interleave.hpp), and `release`,
    // the wait they share (for CUDA targets the thread's stream
    // synchronization). 1, or no release: one case after another. The
    // cases drawn and each one's verdicts do not depend on it.
    int interleave = 1;
    std::function<void()> release;
};

struct CampaignResult {
    long long cases = 0;       // cases checked before any failure
    long long unsupported = 0; // drawn but rejected by the target (discarded)
    std::map<std::string, GateTally> tallies;
    std::optional<Counterexample> failure;
    std::map<int, long long> known; // ledger entry -> cases that failed as it describes
    double seconds = 0, seconds_to_failure = 0;
};

CampaignResult run_campaign(Target& target, const CampaignOptions& opt);

} // namespace attncheck
