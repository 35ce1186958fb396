// The state of a long campaign (`attncheck campaign --dir DIR`), kept in its
// directory so that a campaign stopped at any point resumes where it was:
//   DIR/status.json  totals over every round so far (rounds, seconds, cases,
//                    cases/s, rounds whose child process died, each gate's
//                    tally with its error/bound histogram) and the failures;
//                    with --fuzzer also libFuzzer's executions, coverage,
//                    features and corpus size, after each round
//                    (coverage_history: coverage over time), and the inputs
//                    it saved from crashed jobs;
//   DIR/corpus/      (--fuzzer) the corpus, merged and minimized each round;
//   DIR/crashes/     (--fuzzer) the input of every job that crashed;
//   DIR/failures/    one counterexample per (target, gate, shape class):
//                    the first found; later ones of the same class are
//                    counted, not kept;
//   DIR/rounds/K/    round K's own output: its log, counterexamples and
//                    run report (results.json, junit.xml, index.html).
// The supervisor (app/campaign_command.cpp) runs each round as a child
// `attncheck run` (or a libFuzzer binary in fork mode, app/campaign_fuzzer.cpp),
// so a crash or a sticky CUDA error costs one round (or one fuzzing job).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "properties/campaign/campaign.hpp"

namespace attncheck {

struct CampaignFailure {
    std::string key; // target / gate / shape class
    std::string target, gate, summary;
    std::string file; // under DIR/failures
    long long first_round = 0, seen = 0;
};

// libFuzzer's figures at a moment of a round (its status lines, and its
// end), and the campaign's seconds then.
struct CoveragePoint {
    double seconds = 0;
    long long execs = 0, coverage = 0, features = 0, corpus = 0;
};

struct CampaignState {
    long long rounds = 0, cases = 0, crashes = 0;
    double seconds = 0;
    // --fuzzer campaigns (0 otherwise).
    long long execs = 0, crash_inputs = 0;
    std::vector<CoveragePoint> coverage_history;
    std::map<std::string, GateTally> tallies;
    std::vector<CampaignFailure> failures;
    double cases_per_second() const { return seconds > 0 ? cases / seconds : 0; }
    double execs_per_second() const { return seconds > 0 ? execs / seconds : 0; }
};

// What makes two failures of one gate on one target the same finding:
// dtype, decode or prefill, MHA or GQA, the mask, and the head_dim's range.
std::string shape_class(const Case& c);

// The state in DIR (a fresh one when DIR has none yet). Throws
// std::invalid_argument naming the file when status.json is malformed (the
// command exits 2), std::runtime_error when it cannot be read.
CampaignState load_campaign_state(const std::string& dir);
// Writes DIR/status.json whole (a temporary file renamed over it).
void save_campaign_state(const std::string& dir, const CampaignState& s);

// Folds round `round`'s run report (ROUND_DIR/report/results.json) into the
// state: cases, seconds, tallies, and each failure, whose counterexample is
// copied to DIR/failures when its class is new. Returns the new classes.
int fold_round(CampaignState& s, const std::string& dir, long long round, const std::string& round_dir);

// Folds one counterexample file into the failures (by class, as above).
// Returns true when its class is new.
bool fold_counterexample(CampaignState& s, const std::string& dir, long long round, const std::string& file);

// Folds a fuzzing round's out folder: its tallies-*.json (cases, tallies;
// fuzz/fuzz_tallies.hpp) and its counterexamples. Returns the new classes.
int fold_fuzz_out(CampaignState& s, const std::string& dir, long long round, const std::string& out_dir);

// Folds another campaign directory (a Slurm array task's) into `s`, kept in
// `dir`: totals add up, tallies merge, failures merge by class (counts add;
// a new class's counterexample is copied to DIR/failures). Returns the new
// classes.
int merge_campaign(CampaignState& s, const std::string& dir, const std::string& other_dir);

} // namespace attncheck
