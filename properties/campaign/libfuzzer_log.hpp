// What a libFuzzer run says about itself, read from its log: the last
// status line of fork mode ("#N: cov: C ft: F corp: K exec/s E
// oom/timeout/crash: a/b/c time: Ts job: J ...") or of a plain run ("#N
// <event> cov: C ft: F corp: K/<bytes> ... exec/s: E ..."). The campaign
// supervisor (app/campaign_fuzzer.cpp) turns these into its status and its
// coverage-over-time record. Lines it does not know are ignored: libFuzzer's
// output is for people and changes between versions.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace attncheck {

struct LibFuzzerStats {
    long long execs = 0;    // inputs run (fork mode: over every job)
    long long coverage = 0; // "cov": coverage points (edges)
    long long features = 0; // "ft": features (edges and counters, ours included)
    long long corpus = 0;   // inputs in the corpus
    long long execs_per_s = 0;
    long long crashes = 0; // fork mode: jobs that crashed (gate failures abort, so they count here)
    double seconds = -1;   // fork mode: "time: Ns" since the fuzzer started (-1: not given)
};

// Every status line's figures, in log order (coverage over time).
std::vector<LibFuzzerStats> libfuzzer_stats(const std::string& log);
// The last status line's figures, or nothing when the log has none.
std::optional<LibFuzzerStats> last_libfuzzer_stats(const std::string& log);

} // namespace attncheck
