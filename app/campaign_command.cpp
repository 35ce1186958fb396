// `attncheck campaign --dir DIR`: a long property campaign that survives its
// workers. It runs in rounds; each round is a child `attncheck run` of
// --round-seconds with the round's own seed (--seed + round number), its
// output in DIR/rounds/K. A round whose child dies (a crash, a sticky CUDA
// error: any exit but 0 or 1) is counted as a crash and the next round
// starts fresh processes; a round that found failures has them folded into
// DIR/failures, one per (target, gate, shape class)
// (properties/campaign/campaign_dir.hpp). After each round a status line is
// printed and DIR/status.json rewritten, so a campaign stopped at any point
// resumes from DIR with its totals and round numbering.
//
// With --fuzzer PATH the rounds are a libFuzzer binary's fork mode instead
// (app/campaign_fuzzer.cpp): corpus, coverage, crashed jobs' inputs.
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "app/campaign_args.hpp"
#include "app/commands.hpp"
#include "properties/campaign/child_process.hpp"

namespace attncheck {

namespace {

std::vector<std::string> round_args(const CampaignArgs& a, long long round, double seconds, const std::string& rd) {
    // ATTNCHECK_CAMPAIGN_EXE replaces the program run (tests use it to
    // stand in a worker that crashes).
    const char* alt = std::getenv("ATTNCHECK_CAMPAIGN_EXE");
    std::vector<std::string> v = {alt ? alt : self_exe(),
                                  "run",
                                  "--seconds",
                                  fmt::format("{}", seconds),
                                  "--seed",
                                  std::to_string(a.seed + static_cast<std::uint64_t>(round)),
                                  "--mutant",
                                  a.mutant,
                                  "--out",
                                  rd + "/counterexamples",
                                  "--report",
                                  rd + "/report",
                                  "--processes",
                                  std::to_string(a.processes)};
    if (!a.backend.empty()) v.insert(v.end(), {"--backend", a.backend});
    if (a.workers > 0) v.insert(v.end(), {"--workers", std::to_string(a.workers)});
    if (!a.devices.empty()) v.insert(v.end(), {"--devices", a.devices});
    for (const auto& t : a.targets) v.insert(v.end(), {"--target", t});
    return v;
}

// One property round: a child `attncheck run`; exit 1 means it found failures.
RoundOutcome run_round(const CampaignArgs& a, CampaignState& s, long long k, double seconds, const std::string& rd) {
    RoundOutcome r;
    r.rc = wait_child(spawn_logged(round_args(a, k, seconds, rd), {}, rd + "/log.txt"));
    r.died = r.rc != 0 && r.rc != 1;
    r.fresh = fold_round(s, a.dir, k, rd);
    return r;
}

std::string status_line(const CampaignState& s) {
    std::string line = fmt::format("{} cases, {:.0f} cases/s, {} failure class(es), {} crash(es)", s.cases,
                                   s.cases_per_second(), s.failures.size(), s.crashes);
    if (!s.coverage_history.empty()) {
        const CoveragePoint& c = s.coverage_history.back();
        line += fmt::format("; {} execs ({:.0f}/s), cov {} ft {}, corpus {}, {} crashed-job input(s)", s.execs,
                            s.execs_per_second(), c.coverage, c.features, c.corpus, s.crash_inputs);
    }
    return line;
}

void print_failures(const CampaignState& s) {
    for (const CampaignFailure& f : s.failures)
        fmt::print("  {} (round {}, seen {}x): {}\n    attncheck repro {}\n", f.key, f.first_round, f.seen, f.summary,
                   f.file);
}

// The merge job of a Slurm array (contrib/slurm): the tasks' directories
// folded into --dir.
int cmd_merge(const CampaignArgs& a) {
    CampaignState s = load_campaign_state(a.dir);
    for (const auto& d : a.merge) {
        const int fresh = merge_campaign(s, a.dir, d);
        fmt::print("merged {}: {} new failure class(es)\n", d, fresh);
    }
    save_campaign_state(a.dir, s);
    fmt::print("{}: {} rounds, {} cases, {} crash(es), {} failure class(es)\n", a.dir, s.rounds, s.cases, s.crashes,
               s.failures.size());
    print_failures(s);
    return s.failures.empty() && s.crashes == 0 ? 0 : 1;
}

int cmd_campaign(const CampaignArgs& a) {
    namespace fs = std::filesystem;
    using clock = std::chrono::steady_clock;
    if (!a.merge.empty()) return cmd_merge(a);
    CampaignState s = load_campaign_state(a.dir); // a malformed status.json stops here
    fmt::print("attncheck campaign: {} ({} rounds, {} cases so far), {} s in rounds of {} s\n", a.dir, s.rounds,
               s.cases, a.seconds, a.round_seconds);
    const auto t0 = clock::now();
    auto left = [&] { return a.seconds - std::chrono::duration<double>(clock::now() - t0).count(); };
    int crashes_in_a_row = 0;
    while (left() > 1) {
        // A run that keeps dying (a broken device, a bad build) is retried
        // with a growing pause, not in a tight loop.
        if (crashes_in_a_row > 0)
            std::this_thread::sleep_for(
                std::chrono::duration<double>(std::min(5.0, 0.1 * (1 << std::min(crashes_in_a_row, 6)))));
        const long long k = s.rounds;
        const std::string rd = (fs::path(a.dir) / "rounds" / std::to_string(k)).string();
        fs::create_directories(rd);
        const double seconds = std::min(a.round_seconds, left());
        const RoundOutcome r = a.fuzzer.empty() ? run_round(a, s, k, seconds, rd) : fuzz_round(a, s, k, seconds, rd);
        if (r.died) ++s.crashes;
        crashes_in_a_row = r.died ? crashes_in_a_row + 1 : 0;
        ++s.rounds;
        save_campaign_state(a.dir, s);
        fmt::print(
            "round {}: {}; {}{}{}\n", k,
            r.died ? fmt::format("it died ({}{}), restarted", r.rc < 0 ? "signal " : "exit ", r.rc < 0 ? -r.rc : r.rc)
            : r.fresh   ? fmt::format("{} new failure class(es)", r.fresh)
            : r.rc == 0 ? std::string("every gate held")
                        : "failures found (known classes)",
            status_line(s), r.note.empty() ? "" : "; ", r.note);
        std::fflush(stdout);
        if (a.stop_at_first && !s.failures.empty()) break;
    }
    print_failures(s);
    return s.failures.empty() && s.crashes == 0 ? 0 : 1;
}

} // namespace

void register_campaign_command(CLI::App& app, int& rc) {
    static CampaignArgs a;
    auto* c = app.add_subcommand("campaign", "A long campaign in rounds that survives crashes and resumes from --dir");
    c->add_option("--dir", a.dir, "campaign directory: status.json, failures/, rounds/ (resumed when it exists)")
        ->required();
    c->add_option("--backend", a.backend, "cpu or cuda (default: cuda when a device is visible)");
    c->add_option("--seconds", a.seconds, "time budget of this invocation")->check(CLI::PositiveNumber);
    c->add_option("--round-seconds", a.round_seconds, "length of one round (one child `attncheck run`)")
        ->check(CLI::PositiveNumber);
    c->add_option("--workers", a.workers, "workers per round (default: one per core; --fuzzer cuda: 4 jobs per device)")
        ->check(CLI::Range(1, 4096));
    c->add_option("--processes", a.processes, kProcessesHelp)->check(CLI::Range(1, 256));
    c->add_option("--devices", a.devices, "CUDA devices: all, or a list like 0,1");
    c->add_option("--target", a.targets, "target family (repeatable; default all)");
    c->add_option("--mutant", a.mutant, "run against a mutant build (default none)");
    c->add_option("--seed", a.seed, "seed of round 0 (round K uses seed + K)");
    c->add_flag("--stop-at-first-failure", a.stop_at_first,
                "end with the round that finds the first failure (how long does a campaign take to find a mutant?)");
    c->add_option("--fuzzer", a.fuzzer,
                  "rounds run this libFuzzer binary (build/fuzz*/fuzz/fuzz_attention_cases, fuzz_model_step) in fork "
                  "mode: corpus in DIR/corpus, crashed jobs' inputs in DIR/crashes")
        ->check(CLI::ExistingFile);
    c->add_option("--seed-corpus", a.seed_corpora,
                  "--fuzzer: folders of seed inputs (repeatable), e.g. corpus/fuzz_attention_cases")
        ->check(CLI::ExistingDirectory);
    c->add_option("--model-mutant", a.model_mutant, "--fuzzer fuzz_model_step: the model mutant to run against");
    c->add_option("--max-len", a.max_len, "--fuzzer: largest input in bytes")->check(CLI::Range(64, 1 << 20));
    c->add_option("--merge", a.merge,
                  "instead of running: fold these campaign directories (a Slurm array's tasks) into --dir");
    c->callback([&rc] { rc = cmd_campaign(a); });
}

} // namespace attncheck
