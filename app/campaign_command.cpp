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
// Not here yet (issue 13): libFuzzer corpora (merge, minimization,
// coverage), saving the input a crashed worker was on, Slurm arrays.
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "app/commands.hpp"
#include "properties/campaign/campaign_dir.hpp"

namespace attncheck {

namespace {

struct CampaignArgs {
    std::string dir, backend, mutant = "none", devices;
    std::vector<std::string> targets, merge;
    double seconds = 600, round_seconds = 60;
    int workers = 0, processes = 1;
    std::uint64_t seed = 1;
};

// The child's exit status, or -signal when a signal killed it. Its output
// goes to `log`. ATTNCHECK_CAMPAIGN_EXE replaces the program run (tests use
// it to stand in a worker that crashes).
int run_round(const std::vector<std::string>& args, const std::string& log) {
    const char* alt = std::getenv("ATTNCHECK_CAMPAIGN_EXE");
    const std::string exe = alt ? alt : self_exe();
    std::vector<char*> argv{const_cast<char*>(exe.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("campaign: cannot start a round (fork failed)");
    if (pid == 0) {
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(exe.c_str(), argv.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

std::vector<std::string> round_args(const CampaignArgs& a, long long round, double seconds, const std::string& rd) {
    std::vector<std::string> v = {"run",
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
        const int rc = run_round(round_args(a, k, std::min(a.round_seconds, left()), rd), rd + "/log.txt");
        const bool died = rc != 0 && rc != 1;
        if (died) ++s.crashes;
        crashes_in_a_row = died ? crashes_in_a_row + 1 : 0;
        const int fresh = fold_round(s, a.dir, k, rd);
        ++s.rounds;
        save_campaign_state(a.dir, s);
        fmt::print("round {}: {}; {} cases, {:.0f} cases/s, {} failure class(es){}, {} crash(es)\n", k,
                   died ? fmt::format("its run died ({}{}), restarted", rc < 0 ? "signal " : "exit ", rc < 0 ? -rc : rc)
                   : rc == 0 ? std::string("every gate held")
                             : "failures found",
                   s.cases, s.cases_per_second(), s.failures.size(), fresh ? fmt::format(" ({} new)", fresh) : "",
                   s.crashes);
        std::fflush(stdout);
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
    c->add_option("--workers", a.workers, "workers per round (default: one per core)")->check(CLI::Range(1, 4096));
    c->add_option("--processes", a.processes, kProcessesHelp)->check(CLI::Range(1, 256));
    c->add_option("--devices", a.devices, "CUDA devices: all, or a list like 0,1");
    c->add_option("--target", a.targets, "target family (repeatable; default all)");
    c->add_option("--mutant", a.mutant, "run against a mutant build (default none)");
    c->add_option("--seed", a.seed, "seed of round 0 (round K uses seed + K)");
    c->add_option("--merge", a.merge,
                  "instead of running: fold these campaign directories (a Slurm array's tasks) into --dir");
    c->callback([&rc] { rc = cmd_campaign(a); });
}

} // namespace attncheck
