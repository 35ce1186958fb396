// The libFuzzer rounds of `attncheck campaign --fuzzer PATH`. A round is
// libFuzzer's fork mode (-fork=W): W jobs, each a short-lived process,
// restarted by libFuzzer when one crashes, hangs or runs out of memory, with
// the input it was on saved in DIR/crashes (-ignore_crashes: the round goes
// on; with --stop-at-first-failure it does not). Our fuzz targets abort on a
// gate failure after writing the counterexample (shrunk) into the round's
// out folder, so a failure is both a saved input and a case file; the
// supervisor folds the case files by (target, gate, shape class) and the
// tallies each job left (fuzz/fuzz_tallies.hpp) into the campaign's status.
//
// With --devices (CUDA) a round runs one fork parent per device, each with
// CUDA_VISIBLE_DEVICES set to it and --workers jobs, all on the one corpus.
// After the round the corpus is merged and minimized (-merge=1 into a fresh
// folder, which then replaces it), so it stays the smallest set with the
// same features. CUDA builds of the fuzzers have ASan on host code only, and
// ASan needs protect_shadow_gap=0 where the CUDA driver maps memory; the
// driver's own allocations at exit are not ours to report (detect_leaks=0).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "app/campaign_args.hpp"
#include "app/commands.hpp"
#include "properties/campaign/child_process.hpp"
#include "properties/campaign/libfuzzer_log.hpp"

namespace attncheck {

namespace fs = std::filesystem;

namespace {

// Seconds between two points of coverage_history within a round: a long
// campaign's status stays small, a short one still shows its curve.
constexpr double kHistoryEvery = 10;

long long files_in(const fs::path& d) {
    if (!fs::is_directory(d)) return 0;
    return std::count_if(fs::directory_iterator(d), fs::directory_iterator{},
                         [](const fs::directory_entry& e) { return e.is_regular_file(); });
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The log of device d's fork parent (-1: the only one).
std::string fork_log(const std::string& rd, int d) {
    return fmt::format("{}/log{}.txt", rd, d >= 0 ? std::to_string(d) : "");
}

// The environment every fuzz process of the round gets.
std::vector<std::string> fuzz_env(const CampaignArgs& a, const std::string& out, Backend b) {
    std::vector<std::string> env = {"ATTNCHECK_FUZZ_OUT=" + out,
                                    std::string("ATTNCHECK_FUZZ_BACKEND=") + backend_name(b)};
    if (a.mutant != "none") env.push_back("ATTNCHECK_FUZZ_MUTANT=" + a.mutant);
    if (!a.model_mutant.empty()) env.push_back("ATTNCHECK_FUZZ_MODEL_MUTANT=" + a.model_mutant);
    if (b == Backend::cuda) {
        const char* asan = std::getenv("ASAN_OPTIONS");
        env.push_back(fmt::format("ASAN_OPTIONS={}{}protect_shadow_gap=0:detect_leaks=0", asan ? asan : "",
                                  asan && *asan ? ":" : ""));
    }
    return env;
}

// The fork parent of one device (-1: whatever device the jobs see).
std::vector<std::string> fork_args(const CampaignArgs& a, int jobs, double seconds, long long k, int device) {
    std::vector<std::string> v = {a.fuzzer,
                                  fmt::format("-fork={}", jobs),
                                  fmt::format("-max_total_time={}", std::max(1, static_cast<int>(seconds))),
                                  "-artifact_prefix=" + (fs::path(a.dir) / "crashes").string() + "/",
                                  fmt::format("-seed={}", (a.seed + static_cast<std::uint64_t>(k)) * 131 + device + 1),
                                  fmt::format("-max_len={}", a.max_len),
                                  "-timeout=120", // a hung job is killed and its input saved
                                  "-rss_limit_mb=8192",
                                  "-print_final_stats=1",
                                  "-print_funcs=0"};
    if (!a.stop_at_first) v.insert(v.end(), {"-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"});
    v.push_back((fs::path(a.dir) / "corpus").string());
    for (const auto& c : a.seed_corpora) v.push_back(c);
    return v;
}

// Minimizes DIR/corpus: libFuzzer's merge keeps the fewest inputs with all
// the features, into a fresh folder that then replaces the corpus. A merge
// that fails leaves the corpus as it was.
std::string merge_corpus(const CampaignArgs& a, const std::vector<std::string>& env, const std::string& rd) {
    const fs::path corpus = fs::path(a.dir) / "corpus", next = fs::path(a.dir) / "corpus.next";
    fs::remove_all(next);
    fs::create_directories(next);
    const long long before = files_in(corpus);
    const int rc = wait_child(spawn_logged({a.fuzzer, "-merge=1", fmt::format("-max_len={}", a.max_len),
                                            "-rss_limit_mb=8192", next.string(), corpus.string()},
                                           env, rd + "/merge_log.txt"));
    if (rc != 0 || files_in(next) == 0) {
        fs::remove_all(next);
        return fmt::format("corpus merge failed (exit {}; {}/merge_log.txt)", rc, rd);
    }
    fs::remove_all(corpus);
    fs::rename(next, corpus);
    return fmt::format("corpus {} -> {}", before, files_in(corpus));
}

} // namespace

RoundOutcome fuzz_round(const CampaignArgs& a, CampaignState& s, long long k, double seconds, const std::string& rd) {
    const auto t0 = std::chrono::steady_clock::now();
    const Backend b = resolve_backend(a.backend);
    for (const char* sub : {"corpus", "crashes"}) fs::create_directories(fs::path(a.dir) / sub);
    const std::string out = (fs::path(rd) / "out").string();
    const std::vector<std::string> env = fuzz_env(a, out, b);
    std::vector<int> devices = b == Backend::cuda ? parse_devices(a.devices) : std::vector<int>{};
    if (devices.empty()) devices.push_back(-1);
    const int jobs = a.workers > 0 ? a.workers : b == Backend::cuda ? 4 : default_workers();

    std::vector<pid_t> parents;
    for (int d : devices) {
        std::vector<std::string> e = env;
        if (d >= 0) e.push_back(fmt::format("CUDA_VISIBLE_DEVICES={}", d));
        parents.push_back(spawn_logged(fork_args(a, jobs, seconds, k, d), e, fork_log(rd, d)));
    }
    RoundOutcome r;
    for (pid_t p : parents) {
        const int rc = wait_child(p);
        if (rc != 0 && r.rc == 0) r.rc = rc;
    }

    LibFuzzerStats st;
    bool any = false;
    const double round_start = s.seconds;
    const long long execs_before = s.execs;
    for (int d : devices) {
        const auto lines = libfuzzer_stats(read_text(fork_log(rd, d)));
        if (lines.empty()) continue;
        // Coverage over time inside the round, from the first fork parent's
        // status lines, one point per kHistoryEvery seconds at most.
        if (!any)
            for (const LibFuzzerStats& l : lines)
                if (l.seconds >= 0 && (s.coverage_history.empty() ||
                                       round_start + l.seconds >= s.coverage_history.back().seconds + kHistoryEvery))
                    s.coverage_history.push_back(
                        {round_start + l.seconds, execs_before + l.execs, l.coverage, l.features, l.corpus});
        any = true;
        st.execs += lines.back().execs;
        st.coverage = std::max(st.coverage, lines.back().coverage);
        st.features = std::max(st.features, lines.back().features);
    }
    const long long crash_inputs_before = s.crash_inputs;
    s.crash_inputs = files_in(fs::path(a.dir) / "crashes");
    r.fresh = fold_fuzz_out(s, a.dir, k, out);
    // The fork parent exits non-zero when it stops at a crash; that is a
    // finding, not a death. It died when it left no status at all, or was
    // killed.
    r.died = r.rc < 0 || !any;
    if (!r.died && !a.stop_at_first) r.note = merge_corpus(a, env, rd);
    s.execs += st.execs;
    s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.coverage_history.push_back({s.seconds, s.execs, st.coverage, st.features, files_in(fs::path(a.dir) / "corpus")});
    if (s.crash_inputs > crash_inputs_before)
        r.note += fmt::format("{}{} input(s) of crashed jobs saved in {}/crashes", r.note.empty() ? "" : "; ",
                              s.crash_inputs - crash_inputs_before, a.dir);
    return r;
}

} // namespace attncheck
