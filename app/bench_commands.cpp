// `attncheck bench throughput`: how many verified cases a second the suite
// checks on this machine (the default campaign: every target, every gate),
// and where the time goes. `attncheck _worker` is the worker process of
// parallel runs (properties/campaign/parallel_run.hpp); it is not for people.
#include <unistd.h>

#include <climits>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "properties/campaign/parallel_run.hpp"
#include "properties/gates/oracle_service.hpp"

namespace attncheck {

std::string self_exe() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw std::runtime_error("cannot find this program's own path (/proc/self/exe)");
    return std::string(buf, static_cast<size_t>(n));
}

std::string oracle_line(const RunReport& r) {
    if (r.oracle_gpu_evaluations == 0) return "oracle: host (fp64)";
    return fmt::format("oracle: GPU (fp64), {} evaluations, {} of them repeated on the host and in agreement",
                       r.oracle_gpu_evaluations, r.oracle_cross_checked);
}

int default_workers() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

namespace {

struct BenchArgs {
    std::string backend;
    double seconds = 30;
    int workers = 0; // 0: one per core
    std::uint64_t seed = 1;
    bool json = false;
    std::string out_dir = "attncheck-counterexamples";
    std::string oracle = "auto";
    std::vector<std::string> targets; // empty: all
    int max_len = 0;                  // 0: the backend's default
    long long max_work = 0;           // 0: the backend's default
    int processes = 1;
    int interleave = kDefaultInterleave;
};

int cmd_bench_throughput(const BenchArgs& a) {
    RunSpec spec;
    spec.backend = resolve_backend(a.backend);
    spec.seconds = a.seconds;
    spec.seed = a.seed;
    spec.workers = a.workers > 0 ? a.workers : default_workers();
    spec.limits = default_limits(spec.backend);
    if (a.max_len > 0) spec.limits.max_len = a.max_len;
    if (a.max_work > 0) spec.limits.max_work = a.max_work;
    spec.targets = a.targets;
    spec.processes = a.processes;
    spec.interleave = a.interleave;
    spec.out_dir = a.out_dir;
    spec.oracle = a.oracle;
    parse_oracle_preference(a.oracle); // a bad value fails here, not in every worker
    const RunReport r = run_parallel(spec, self_exe());
    int failures = 0;
    for (const TargetRun& t : r.targets) failures += t.failure.has_value();
    const bool ok = failures == 0 && r.worker_errors.empty();
    if (a.json) {
        nlohmann::json j;
        j["cases_per_s"] = r.cases_per_second();
        j["backend"] = backend_name(spec.backend);
        j["device"] = spec.backend == Backend::cuda ? device_line() : std::string("cpu");
        j["commit"] = build_commit();
        j["seconds"] = r.wall_seconds;
        j["cases"] = r.cases;
        j["workers"] = r.workers;
        j["interleave"] = spec.backend == Backend::cuda ? spec.interleave : 1;
        j["failures"] = failures;
        j["oracle"] = a.oracle;
        j["oracle_gpu_evaluations"] = r.oracle_gpu_evaluations;
        j["cuda_calls_per_case"] = r.cases ? static_cast<double>(r.cuda_calls) / static_cast<double>(r.cases) : 0.0;
        j["oracle_cross_checked"] = r.oracle_cross_checked;
        j["worker_errors"] = r.worker_errors;
        j["phase_seconds"] = phase_seconds_json(r.phases);
        j["phase_entries"] = phase_entries_json(r.phases);
        // Per target: its cases and the seconds its campaigns took, summed
        // over workers (cases * workers / worker_seconds is its own rate).
        j["targets"] = nlohmann::json::array();
        for (const TargetRun& t : r.targets)
            j["targets"].push_back({{"target", t.target}, {"cases", t.cases}, {"worker_seconds", t.seconds}});
        fmt::print("{}\n", j.dump(2));
    } else {
        fmt::print("attncheck bench throughput: backend {}, {} worker(s), {:.0f} s, commit {}\n{}\n\n",
                   backend_name(spec.backend), r.workers, spec.seconds, build_commit(), device_line());
        fmt::print("{} cases in {:.1f} s: {:.1f} verified cases/s (every target, every gate)\n\n", r.cases,
                   r.wall_seconds, r.cases_per_second());
        fmt::print("where the time goes (seconds summed over workers):\n{}", phase_table(r.phases));
        fmt::print("{}\n", oracle_line(r));
        for (const TargetRun& t : r.targets)
            if (t.failure) fmt::print("\n{} FAILED gate {}: {}\n", t.target, t.failure->gate, t.failure->summary);
        for (const auto& e : r.worker_errors) fmt::print("\n{}\n", e);
    }
    return ok ? 0 : 1;
}

} // namespace

void register_bench_commands(CLI::App& app, int& rc) {
    auto* bench = app.add_subcommand(
        "bench",
        "benchmarks: `bench throughput` (verified cases per second), `bench kernels` (kernel times), "
        "`bench model` (decode ms/token)");
    bench->require_subcommand(1);
    register_bench_kernels(*bench, rc);
    register_bench_model(*bench, rc);
    auto args = std::make_shared<BenchArgs>();
    auto* tp = bench->add_subcommand("throughput", "verified cases/s of the default campaign, and where the time goes");
    tp->add_option("--backend", args->backend, "cpu or cuda (default: cuda when a device is visible)");
    tp->add_option("--seconds", args->seconds, "how long to run")->check(CLI::PositiveNumber);
    tp->add_option("--workers", args->workers, "workers (default: one per core; threads for cuda, processes for cpu)")
        ->check(CLI::NonNegativeNumber);
    tp->add_option("--seed", args->seed, "run seed (worker w derives its own)");
    tp->add_option("--out", args->out_dir, "where a failure's counterexample is written");
    tp->add_flag("--json", args->json, "one JSON object on stdout");
    tp->add_option("--target", args->targets, "target family (repeatable; default all)");
    tp->add_option("--max-len", args->max_len, "longest prefill q/kv length drawn (default 130 cpu, 520 cuda)")
        ->check(CLI::Range(1, 65536));
    tp->add_option("--max-work", args->max_work, "cap on sum of q_len*kv_len*heads*head_dim per case")
        ->check(CLI::PositiveNumber);
    tp->add_option("--oracle", args->oracle, "where the fp64 oracle runs: auto (GPU for CUDA targets), host or gpu");
    tp->add_option("--processes", args->processes, kProcessesHelp)->check(CLI::Range(1, 256));
    tp->add_option("--interleave", args->interleave, kInterleaveHelp)->check(CLI::Range(1, 256));
    tp->callback([args, &rc] { rc = cmd_bench_throughput(*args); });

    // The worker process of parallel runs: a RunSpec on stdin, a RunReport on stdout.
    auto wk = std::make_shared<std::pair<int, int>>(0, 1);
    auto* worker = app.add_subcommand("_worker", ""); // no description: hidden from --help
    worker->add_option("worker", wk->first)->required();
    worker->add_option("workers", wk->second)->required();
    worker->callback([wk, &rc] { rc = worker_main(wk->first, wk->second); });
}

} // namespace attncheck
