// A property run (`attncheck run`, `attncheck bench throughput`) over the
// selected targets, spread over workers: one per core by default.
//
// CPU runs use worker processes: each worker is a fresh exec of this binary
// (`attncheck _worker`), a crash takes down one worker rather than the run,
// and RapidCheck's global state is never shared. The parent sends the
// RunSpec as JSON on the worker's stdin and reads its RunReport as JSON from
// its stdout.
//
// CUDA runs use worker threads in one process: processes would each hold a
// CUDA context, and contexts time-slice the GPU, so sixteen of them checked
// barely more than one. Threads share the context and each drives its own
// stream. They draw with the seeded drawer (RapidCheck's state is global;
// only the shrinking of a failure takes RapidCheck's lock). The price: a
// sticky CUDA error ends every worker on that device.
//
// Worker w draws from its own seed (worker_seed(seed, w); worker 0 keeps the
// run seed, so a one-worker run is the run it always was). A failure is
// shrunk and saved by the worker that found it; the counterexample file
// replays bit for bit whichever worker wrote it.
//
// With --interleave N, each CUDA worker thread checks N cases at once, on
// fibers (engine/fiber/interleave.hpp): their runs are enqueued side by
// side and one stream synchronization serves every case that waits,
// instead of one per run. It pays where a context has one thread
// (--workers 1: +17%) or its own process (--processes under MPS: about
// +4%); sixteen threads that never wait in one context contend for its
// lock and check fewer cases (251/s against 424), so the default is 1
// (bench/results/2026-12-02-h200-interleave/).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/timing/phase_timer.hpp"
#include "properties/campaign/campaign.hpp"

namespace attncheck {

// Cases a CUDA worker thread checks at once (RunSpec::interleave).
inline constexpr int kDefaultInterleave = 1;

struct RunSpec {
    Backend backend = Backend::cpu;
    Mutant mutant = Mutant::none;
    std::vector<std::string> targets; // empty: every family
    std::vector<std::string> gates;   // empty: every gate
    long long cases = 200;            // per target (split over the workers), when seconds == 0
    double seconds = 0;               // wall-clock budget of the whole run (each worker splits it over targets)
    std::uint64_t seed = 1;
    std::string out_dir; // counterexample files; empty: not saved
    GenLimits limits;
    int workers = 1;
    std::vector<int> devices;            // CUDA devices; worker w uses devices[w % size] (empty: the default one)
    int processes = 1;                   // CUDA: worker threads split over this many processes (contexts)
    int interleave = kDefaultInterleave; // CUDA: cases each thread checks at once (CampaignOptions::interleave)
    std::string oracle = "auto";         // auto, host or gpu (properties/gates/oracle_service.hpp)
    std::vector<std::string> plugins;    // shared libraries of targets (properties/campaign/plugin_targets.hpp)
    std::string known_failures;          // ledger file (properties/campaign/known_failures.hpp); empty: none
    std::vector<std::string> externals;  // adapter commands (docs/adapter-protocol.md)
};

struct FailureRecord {
    std::string path; // counterexample file ("" when not saved)
    std::string gate, summary, report;
    int shrink_steps = 0;
    std::vector<std::string> shrink_trajectory; // shapes, first found to shrunk
    double seconds_to_failure = 0;
    long long cases_before = 0;
    int worker = 0;
};

struct TargetRun {
    std::string target; // full name, e.g. cuda/decode_gqa
    long long cases = 0, unsupported = 0;
    double seconds = 0; // summed over workers
    std::optional<FailureRecord> failure;
    int also_failed_in = 0;                   // other workers that found a failure on this target
    std::map<int, long long> known;           // ledger entry -> cases that failed as it describes
    std::map<std::string, GateTally> tallies; // this target's, per gate
};

struct RunReport {
    std::vector<TargetRun> targets;
    std::map<std::string, GateTally> tallies;
    PhaseTotals phases; // summed over workers (CPU seconds)
    long long cases = 0;
    double wall_seconds = 0;
    int workers = 1;
    std::vector<std::string> worker_errors;                         // a worker that crashed or answered nonsense
    long long oracle_gpu_evaluations = 0, oracle_cross_checked = 0; // GPU oracle runs, and those repeated on the host
    long long cuda_calls = 0; // CUDA and cuBLAS calls the workers made (each takes the context's lock)
    double cases_per_second() const { return wall_seconds > 0 ? cases / wall_seconds : 0; }
};

std::uint64_t worker_seed(std::uint64_t seed, int worker);

// The case-size limits of the default campaign on a backend: the fp64 oracle
// on the host bounds how large a case can be; a CUDA target is fast enough
// that longer prefills are worth their oracle time.
GenLimits default_limits(Backend b);

// Worker w's share of the run, in this process.
RunReport run_share(const RunSpec& spec, int worker, int workers, Drawer drawer = Drawer::rapidcheck);

// Workers [first, last) of the run in threads of this process, whatever the
// backend (tests run it on the CPU; run_parallel picks it for CUDA).
RunReport run_threads(const RunSpec& spec, int first, int last);
inline RunReport run_threads(const RunSpec& spec) { return run_threads(spec, 0, std::max(1, spec.workers)); }

// The whole run. CUDA: one worker thread per worker, in this process, or
// split evenly over spec.processes `self_exe _worker` processes (each its own
// CUDA context; see run_threads in parallel_run.cpp). CPU: in this process
// when spec.workers == 1, else one `self_exe _worker` process per worker.
RunReport run_parallel(const RunSpec& spec, const std::string& self_exe);

// The worker's side: read a RunSpec from stdin, write its RunReport to
// stdout. CPU: worker `worker` of `workers`; CUDA: process `worker` of
// `workers` processes, running its share of the worker threads.
int worker_main(int worker, int workers);

std::string run_spec_json(const RunSpec& s);
RunSpec run_spec_from_json(const std::string& text);
std::string run_report_json(const RunReport& r);
// Gate tallies as reports and campaign directories write them: per gate
// [pass, fail, skip, worst ratio, [ratio histogram]].
nlohmann::json tallies_json(const std::map<std::string, GateTally>& tallies);
std::map<std::string, GateTally> tallies_from_json(const nlohmann::json& j);
RunReport run_report_from_json(const std::string& text);

// The per-phase table ("where the time goes"), one line per phase.
std::string phase_table(const PhaseTotals& t);
// {phase: seconds} and {phase: scopes entered}, as run reports and
// `bench throughput --json` write them; read back by phase name.
nlohmann::json phase_seconds_json(const PhaseTotals& t);
nlohmann::json phase_entries_json(const PhaseTotals& t);
PhaseTotals phase_totals_from_json(const nlohmann::json& seconds, const nlohmann::json& entries);

} // namespace attncheck
