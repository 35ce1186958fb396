// The subcommands of `attncheck`, one registration function per file. Each
// callback stores its exit code in `rc`: 0 all good, 1 a check failed,
// 2 bad input (a message on stderr).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/targets/target.hpp"

namespace attncheck {

void register_oracle_commands(CLI::App& app, int& rc);   // selfcheck, validate, info
void register_property_commands(CLI::App& app, int& rc); // list, run, repro, mutants
void register_model_commands(CLI::App& app);             // model-* (app/model_commands.cpp)
void register_bench_commands(CLI::App& app, int& rc);    // bench throughput, _worker (app/bench_commands.cpp)
void register_bench_kernels(CLI::App& bench, int& rc);   // bench kernels (app/bench_kernels.cpp)
void register_bench_model(CLI::App& bench, int& rc);     // bench model (app/bench_model.cpp)
void register_campaign_command(CLI::App& app, int& rc);  // campaign (app/campaign_command.cpp)
void register_shrink_command(CLI::App& app, int& rc);    // shrink (app/shrink_command.cpp)

// The model campaign (app/model_campaign_commands.cpp): `run --target model`
// and `repro` of a model case file (`text` is the file's content).
int cmd_run_model(const std::string& backend, const std::string& mutant, long long cases, double seconds,
                  std::uint64_t seed, const std::string& out_dir, const std::string& external = "");
int cmd_repro_model(const std::string& file, const std::string& text, const std::string& backend_override,
                    const std::string& mutant_override, const std::string& external = "");
// `mutants --target model`: each model mutant against the model campaign,
// with the layer and stage that caught it beside where the mutant acts.
int cmd_mutants_model(const std::string& backend, bool json, long long cases, double seconds, std::uint64_t seed,
                      const std::vector<std::string>& mutants, const std::string& save);

// This program's own path (workers are started from it), and the default
// number of workers (one per core).
std::string self_exe();
int default_workers();
// --processes of `run` and `bench throughput`.
inline constexpr const char* kProcessesHelp =
    "cuda: split the worker threads over this many processes, each its own CUDA context (default 1)";

// --interleave of `run` and `bench throughput`.
inline constexpr const char* kInterleaveHelp =
    "cuda: cases each worker thread checks at once, their device waits shared (default 1: one at a time; "
    "pays with --workers 1 or with --processes under MPS, docs/throughput.md)";

struct RunReport;
// One line on where the fp64 oracle ran in a run, and its cross-checks.
std::string oracle_line(const RunReport& r);

// The commit this binary was built from (generated at build time,
// cmake/commit_info.cmake).
const char* build_commit();

// "CUDA device: NAME", or why there is none.
std::string device_line();
// Visible CUDA devices (0 without the CUDA backend or a device).
int visible_cuda_devices();
// --devices: "all" -> every visible device; "0,2" -> those; "" -> none
// (the default device). Throws std::invalid_argument for anything else.
std::vector<int> parse_devices(const std::string& s);
// True when the CUDA backend is built and a device is visible.
bool cuda_usable(std::string* why = nullptr);
// "cpu" / "cuda" / "" (auto: cuda when usable); throws std::invalid_argument
// for an unknown name or for cuda without a device.
Backend resolve_backend(const std::string& name);

struct CounterexampleFile;
// The targets a counterexample file replays on (`repro`, `shrink`): the one
// it records (every target for a bare case), built on its recorded backend
// and mutant unless overridden; --plugin and --external supply the targets
// outside the engine.
struct ReplayTargets {
    Backend backend;
    std::vector<std::unique_ptr<Target>> targets;
};
ReplayTargets replay_targets(const CounterexampleFile& f, const std::string& backend_override,
                             const std::string& mutant_override, const std::vector<std::string>& plugins,
                             const std::vector<std::string>& externals);

} // namespace attncheck
