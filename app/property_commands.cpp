// `attncheck list`, `run`, `repro` and `mutants`: the property suite from the
// command line (properties/). Every failure prints its gate report, the path
// of the counterexample file it wrote, and the one command that replays it.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "app/commands.hpp"
#include "kernels/registry.hpp"
#include "model/model_case.hpp"
#include "model/model_mutant.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/counterexample.hpp"
#include "properties/campaign/known_failures.hpp"
#include "properties/campaign/mutation_score.hpp"
#include "properties/campaign/parallel_run.hpp"
#include "properties/campaign/plugin_targets.hpp"
#include "properties/campaign/run_report_files.hpp"
#include "properties/gates/oracle_service.hpp"

namespace attncheck {

namespace {

struct RunArgs {
    std::string backend;
    std::vector<std::string> targets, gates;
    std::string mutant = "none";
    long long cases = 200;
    double seconds = 0;
    std::uint64_t seed = 1;
    std::string out_dir = "attncheck-counterexamples";
    int max_len = 0;                     // 0: the backend's default
    long long max_work = 0;              // 0: the backend's default
    int workers = 0;                     // 0: one per core
    std::string devices;                 // CUDA devices: "all" or a list "0,1"; empty: the default device
    int processes = 1;                   // CUDA: processes the worker threads are split over
    int interleave = kDefaultInterleave; // CUDA: cases a worker thread checks at once
    std::string oracle = "auto";
    std::vector<std::string> plugins;
    std::string known_failures;         // ledger file
    std::string report_dir;             // --report: results.json, junit.xml, index.html
    std::vector<std::string> externals; // adapter commands
};

} // namespace

std::vector<int> parse_devices(const std::string& s) {
    std::vector<int> out;
    if (s.empty()) return out;
    if (s == "all") {
        const int n = visible_cuda_devices();
        if (n < 1) throw std::invalid_argument("--devices all: no CUDA device is visible");
        for (int d = 0; d < n; ++d) out.push_back(d);
        return out;
    }
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t end = std::min(s.find(',', pos), s.size());
        const std::string tok = s.substr(pos, end - pos);
        if (tok.empty() || tok.find_first_not_of("0123456789") != std::string::npos)
            throw std::invalid_argument(fmt::format("--devices: '{}' is not 'all' or a list like 0,1", s));
        out.push_back(std::stoi(tok));
        pos = end + 1;
    }
    return out;
}

namespace {

Mutant mutant_arg(const std::string& name) {
    const auto m = parse_mutant(name);
    if (!m) throw std::invalid_argument(fmt::format("unknown mutant '{}' (attncheck list shows them)", name));
    return *m;
}

std::string capabilities_line(const Target& t) {
    const Capabilities caps = probe_capabilities(t);
    if (caps.empty()) return "no supported shape";
    std::string s = caps.decode_only ? "decode (q_len <= 1)" : "prefill and decode";
    for (DType dt : caps.dtypes) {
        const auto& dims = caps.head_dims.at(dt);
        s += fmt::format("; {}: head_dim {}", dtype_name(dt),
                         dims.size() == candidate_head_dims().size() ? std::string("1-256")
                                                                     : fmt::format("{}", fmt::join(dims, "/")));
    }
    return s;
}

// The gates with the bug classes they exist for and the mutants they kill
// first, as the markdown table docs/gates.md carries between its catalogue
// markers; a ctest (tests/check_catalogue_doc.sh) keeps the two equal.
std::string catalogue_markdown() {
    auto cell = [](std::vector<std::string> items) {
        if (items.empty()) return std::string("-");
        std::string s = fmt::format("{}", fmt::join(items, ", "));
        for (std::size_t i = s.find('|'); i != std::string::npos; i = s.find('|', i + 2)) s.replace(i, 1, "\\|");
        return s;
    };
    // A misspelt gate in the catalogue would otherwise vanish from the table.
    for (const auto& m : all_mutants()) {
        std::vector<std::string_view> named = also_gates(m);
        named.push_back(m.expected_gate);
        for (std::string_view g : named)
            if (!find_gate(g)) throw std::logic_error(fmt::format("mutant {} names unknown gate '{}'", m.name, g));
    }
    std::string out =
        "| gate | invariant | bug classes it exists for | mutants it kills first | also first on some cases |\n"
        "|---|---|---|---|---|\n";
    for (const Gate& g : all_gates()) {
        std::vector<std::string> bugs, first, some;
        for (const auto& b : all_bug_classes())
            if (std::string_view(b.gate) == g.name) bugs.push_back(b.name);
        for (const auto& m : all_mutants()) {
            const std::string name = m.cuda_only() ? fmt::format("{} (CUDA only)", m.name) : std::string(m.name);
            if (std::string_view(m.expected_gate) == g.name) first.push_back(name);
            for (std::string_view a : also_gates(m))
                if (a == g.name) some.push_back(name);
        }
        out += fmt::format("| {} | {} | {} | {} | {} |\n", g.name, cell({g.invariant}), cell(bugs), cell(first),
                           cell(some));
    }
    std::vector<std::string> outside;
    for (const auto& b : all_bug_classes())
        if (!find_gate(b.gate)) outside.push_back(fmt::format("{} ({})", b.name, b.gate));
    if (!outside.empty())
        out += fmt::format("\nBug classes with no gate of their own: {}.\n", fmt::join(outside, ", "));
    return out;
}

int cmd_list() {
    fmt::print("Targets\n");
    std::vector<Backend> backends{Backend::cpu};
    if (cuda_usable()) backends.push_back(Backend::cuda);
    for (Backend b : backends)
        for (const auto& t : make_targets(b)) {
            fmt::print("  {:22} {}\n", t->full_name(), t->description());
            fmt::print("  {:22} {}\n", "", capabilities_line(*t));
        }
    if (!cuda_usable()) fmt::print("  (cuda targets: {})\n", device_line());
    fmt::print("  {:22} {}\n  {:22} {}\n", "model", "the whole decoder under random configurations and schedules", "",
               "attncheck run --target model: its own gates (stages, decode_prefill, families; docs/model-case.md)");
    fmt::print("\nGates (in the order they run)\n");
    for (const Gate& g : all_gates())
        fmt::print("  {:18} {}\n  {:18} catches: {}\n", g.name, g.invariant, "", g.catches);
    fmt::print("\nBug classes (../shared/bug-classes.md; the gate that exists for each)\n");
    for (const auto& b : all_bug_classes())
        fmt::print("  {:26} {}\n  {:26} gate: {}; seen in: {}\n", b.name, b.title, "", b.gate, b.seen_in);
    fmt::print("\nMutants (compile-time; `attncheck mutants` runs the suite against each)\n");
    for (const auto& m : all_mutants())
        fmt::print("  {:24} {}\n  {:24} bug class: {}; expected gate: {}{}{}; in: {}\n", m.name, m.models, "",
                   bug_class_name(m.bug_class), m.expected_gate, *m.also_gate ? " (or " : "",
                   *m.also_gate ? fmt::format("{})", fmt::join(also_gates(m), ", ")) : std::string(),
                   scope_name(m.scope));
    fmt::print("\nModel mutants (`attncheck mutants --target model`; the layer and stage that must catch them)\n");
    for (const auto& m : all_model_mutants())
        fmt::print("  {:24} {}\n  {:24} first stage: {}\n", m.name, m.models, "", m.first_stage);
    return 0;
}

int cmd_run(const RunArgs& a) {
    if (std::find(a.targets.begin(), a.targets.end(), "model") != a.targets.end()) {
        if (a.targets.size() != 1 || !a.plugins.empty() || a.externals.size() > 1 || !a.gates.empty())
            throw std::invalid_argument(
                "--target model runs alone (its own gates, no plugins; at most one --external model adapter)");
        return cmd_run_model(a.backend, a.mutant, a.cases, a.seconds, a.seed, a.out_dir,
                             a.externals.empty() ? "" : a.externals.front());
    }
    RunSpec spec;
    spec.backend = resolve_backend(a.backend);
    spec.mutant = mutant_arg(a.mutant);
    spec.targets = a.targets;
    spec.gates = a.gates;
    spec.cases = a.cases;
    spec.seconds = a.seconds;
    spec.seed = a.seed;
    spec.out_dir = a.out_dir;
    spec.limits = default_limits(spec.backend);
    if (a.max_len > 0) spec.limits.max_len = a.max_len;
    if (a.max_work > 0) spec.limits.max_work = a.max_work;
    spec.devices = parse_devices(a.devices);
    spec.processes = a.processes;
    spec.interleave = a.interleave;
    spec.oracle = a.oracle;
    parse_oracle_preference(a.oracle); // a bad value fails here, not in every worker
    spec.plugins = a.plugins;
    spec.known_failures = a.known_failures;
    spec.externals = a.externals;
    std::optional<Ledger> ledger;
    if (!a.known_failures.empty()) ledger = load_ledger(a.known_failures); // bad files fail here, exit 2
    spec.workers = a.workers > 0 ? a.workers : default_workers();
    if (spec.backend == Backend::cuda && !spec.devices.empty())
        spec.workers = std::max(spec.workers, static_cast<int>(spec.devices.size()));
    const auto gates = gate_pointers(a.gates);
    // Validates the names (and starts each adapter once, to read its capabilities).
    const auto targets = make_run_targets(spec.backend, spec.mutant, a.targets, a.plugins, a.externals);
    fmt::print("attncheck run: backend {}, {} target(s), {} gate(s), seed {}, {}, {} worker(s)\n",
               backend_name(spec.backend), targets.size(), gates.size(), a.seed,
               a.seconds > 0 ? fmt::format("{} s", a.seconds) : fmt::format("{} cases per target", a.cases),
               spec.workers);
    fmt::print("{}\n\n", device_line());
    std::fflush(stdout);
    const RunReport r = run_parallel(spec, self_exe());
    int failures = 0;
    for (const TargetRun& t : r.targets) {
        if (!t.failure) {
            fmt::print("  {:28} ok      {:6} cases  {:6.1f} s{}\n", t.target, t.cases, t.seconds,
                       t.cases == 0 ? "  (no case it supports was drawn)" : "");
            continue;
        }
        ++failures;
        const FailureRecord& f = *t.failure;
        fmt::print("  {:28} FAILED  after {} cases, {:.1f} s (worker {}{}); shrunk in {} steps\n\n{}\n", t.target,
                   f.cases_before, f.seconds_to_failure, f.worker,
                   t.also_failed_in ? fmt::format("; {} other worker(s) failed too", t.also_failed_in) : "",
                   f.shrink_steps, f.report);
        std::string plugin_args;
        for (const auto& pl : a.plugins) plugin_args += " --plugin " + pl;
        for (const auto& ex : a.externals) plugin_args += " --external '" + ex + "'";
        fmt::print("counterexample: {}\nreplay:         attncheck repro {}{}\n\n", f.path, f.path, plugin_args);
    }
    for (const auto& e : r.worker_errors) fmt::print("  {}\n", e);
    if (ledger) {
        // Known failures: reported, not failing the run; stale entries: said.
        for (const TargetRun& t : r.targets)
            for (const auto& [k, n] : t.known) {
                const KnownFailure& e = ledger->entries[static_cast<size_t>(k)];
                fmt::print("  {:28} known   {} case(s) failed {} as entry {} says: {}{}\n", t.target, n, e.gate, k,
                           e.reason, e.link.empty() ? "" : " (" + e.link + ")");
            }
        auto ledger_targets = make_run_targets(spec.backend, spec.mutant, a.targets, a.plugins, a.externals);
        for (const StaleEntry& s : stale_entries(*ledger, ledger_targets))
            fmt::print("  stale ledger entry {}: {}\n", s.entry, s.detail);
    }
    fmt::print("\n{:18} {:>8} {:>8} {:>8}  {}\n", "gate", "held", "FAILED", "skipped", "worst err/bound");
    for (const Gate* g : gates) {
        const GateTally tl = r.tallies.count(g->name) ? r.tallies.at(g->name) : GateTally{};
        fmt::print("{:18} {:>8} {:>8} {:>8}  {}\n", g->name, tl.pass, tl.fail, tl.skip,
                   tl.worst_ratio >= 0 ? fmt::format("{:.3g}", tl.worst_ratio) : std::string("-"));
    }
    fmt::print("\nwhere the time goes (seconds summed over workers):\n{}", phase_table(r.phases));
    fmt::print("{}\n", oracle_line(r));
    const bool ok = failures == 0 && r.worker_errors.empty();
    if (!a.report_dir.empty()) {
        ReportContext ctx{build_commit(), device_line(), ledger ? &*ledger : nullptr, {}};
        for (const auto& pl : a.plugins) ctx.plugin_args += " --plugin " + pl;
        for (const auto& ex : a.externals) ctx.plugin_args += " --external '" + ex + "'";
        write_run_report(a.report_dir, spec, r, ctx);
        fmt::print("report: {}/index.html, junit.xml, results.json\n", a.report_dir);
    }
    fmt::print("\n{} cases in {:.1f} s ({:.1f} cases/s, {} worker(s)); {}\n", r.cases, r.wall_seconds,
               r.cases_per_second(), r.workers,
               ok         ? "every gate held"
               : failures ? fmt::format("{} target(s) FAILED", failures)
                          : fmt::format("{} worker(s) FAILED", r.worker_errors.size()));
    return ok ? 0 : 1;
}

// Exit codes: 0 every gate held, 1 a gate failed, and with expect_gate 3
// when the first gate to fail is not the one the file records (the bug is
// still caught, but no longer by the gate that names it).
int cmd_repro(const std::string& file, const std::string& backend_override, const std::string& mutant_override,
              bool expect_gate, const std::vector<std::string>& plugins, const std::vector<std::string>& externals) {
    if (std::ifstream in(file); in) {
        std::stringstream ss;
        ss << in.rdbuf();
        if (looks_like_model_case(ss.str())) {
            if (externals.size() > 1) throw std::invalid_argument("repro of a model case: at most one --external");
            return cmd_repro_model(file, ss.str(), backend_override, mutant_override,
                                   externals.empty() ? "" : externals.front());
        }
    }
    const CounterexampleFile f = load_counterexample(file);
    if (expect_gate && !f.gate)
        throw std::invalid_argument(
            fmt::format("{}: --expect-gate needs a counterexample file that records a gate, not a bare case", file));
    auto [b, targets] = replay_targets(f, backend_override, mutant_override, plugins, externals);
    fmt::print("attncheck repro {}\n", file);
    if (f.gate) fmt::print("recorded: {} failed gate {}: {}\n", f.target.value_or("?"), *f.gate, f.summary);
    int failed = 0, ran = 0;
    std::string first_failed; // the first failing gate (a counterexample file has one target)
    for (auto& t : targets) {
        const std::string why = t->unsupported(f.kase);
        if (!why.empty()) {
            fmt::print("\n{}: not run: {}\n", t->full_name(), why);
            continue;
        }
        ++ran;
        const CaseCheck chk = check_case(*t, f.kase, gate_pointers({}), /*stop_at_first=*/false);
        fmt::print("\n{}\n", t->full_name());
        for (const auto& o : chk.outcomes)
            fmt::print("  {:18} {:4}  {}\n", o.gate->name, gate_status_name(o.verdict.status), o.verdict.summary);
        if (const GateOutcome* fo = chk.failure()) {
            ++failed;
            if (first_failed.empty()) first_failed = fo->gate->name;
            fmt::print("\n{}", failure_report(*t, f.kase, *fo));
        }
    }
    if (ran == 0)
        throw std::invalid_argument(
            fmt::format("{}: no target of backend {} supports this case", file, backend_name(b)));
    fmt::print("\n{}\n", failed ? fmt::format("{} target(s) FAILED", failed) : "every gate held");
    if (expect_gate && failed) {
        if (first_failed != *f.gate) {
            fmt::print("UNEXPECTED GATE: {} failed first, not the recorded gate {}\n", first_failed, *f.gate);
            fmt::print(stderr, "error: {}: gate {} failed first, not the recorded gate {}\n", file, first_failed,
                       *f.gate);
            return 3;
        }
        fmt::print("the recorded gate {} is the first that fails\n", *f.gate);
    }
    return failed ? 1 : 0;
}

int cmd_mutants(const std::string& backend, bool json, long long cases, double seconds, std::uint64_t seed,
                const std::vector<std::string>& mutants, const std::vector<std::string>& targets,
                const std::string& save) {
    if (std::find(targets.begin(), targets.end(), "model") != targets.end()) {
        if (targets.size() != 1) throw std::invalid_argument("--target model runs alone");
        return cmd_mutants_model(backend, json, cases, seconds, seed, mutants, save);
    }
    MutationOptions mo;
    mo.backend = resolve_backend(backend);
    for (const auto& n : mutants) mo.mutants.push_back(mutant_arg(n));
    mo.targets = targets;
    mo.cases = cases;
    mo.seconds = seconds;
    mo.seed = seed;
    const bool tty = isatty(fileno(stderr));
    mo.on_row = [&](const MutantRow& r) {
        if (!tty && json) return;
        std::string what = "SURVIVED";
        if (r.killed) {
            what = fmt::format("killed by {} in {:.2f} s", r.gate, r.seconds);
            if (!r.killed_as_expected())
                what += fmt::format(" (UNEXPECTED GATE: expected {})", mutant_info(r.mutant)->expected_gate);
        }
        fmt::print(stderr, "  {:24} {:14} {}\n", mutant_name(r.mutant), r.target, what);
    };
    const auto rows = run_mutation_score(mo);
    if (!save.empty())
        for (const auto& r : rows)
            if (r.shrunk) save_counterexample(*r.shrunk, save);
    if (json)
        fmt::print("{}", mutation_json(rows));
    else
        fmt::print("\n{}", mutation_table(rows));
    return mutation_score_holds(rows) ? 0 : 1;
}

} // namespace

void register_property_commands(CLI::App& app, int& rc) {
    auto* list = app.add_subcommand("list", "Targets (with backend), gates, bug classes and mutants");
    static bool catalogue = false;
    list->add_flag("--catalogue-markdown", catalogue,
                   "print only the markdown table of gates, bug classes and mutants (docs/gates.md carries it)");
    static bool distribution = false;
    list->add_flag("--distribution", distribution,
                   "print only the case distribution: axis, alternative, weight, share of the axis");
    list->callback([&rc] {
        if (distribution) {
            fmt::print("{}", case_distribution_table());
            rc = 0;
            return;
        }
        if (catalogue) {
            fmt::print("{}", catalogue_markdown());
            rc = 0;
            return;
        }
        rc = cmd_list();
    });

    static RunArgs ra;
    auto* run = app.add_subcommand("run", "Property campaign against the engine's targets");
    run->add_option("--backend", ra.backend, "cpu or cuda (default: cuda when a device is visible)");
    run->add_option("--target", ra.targets, "target family (repeatable; default all)");
    run->add_option("--gate", ra.gates, "gate (repeatable; default all)");
    run->add_option("--mutant", ra.mutant, "run against a mutant build (default none)");
    auto* c = run->add_option("--cases", ra.cases, "passing cases per target")->check(CLI::Range(1LL, 1LL << 40));
    run->add_option("--seconds", ra.seconds, "time budget for the whole run instead of a case count")
        ->check(CLI::PositiveNumber)
        ->excludes(c);
    run->add_option("--seed", ra.seed, "first RapidCheck seed");
    run->add_option("--out", ra.out_dir, "directory for counterexample files");
    run->add_option("--max-len", ra.max_len, "longest prefill q/kv length drawn (default 130 cpu, 520 cuda)")
        ->check(CLI::Range(1, 1 << 16));
    run->add_option("--max-work", ra.max_work, "cap on sum of q_len*kv_len*heads*head_dim per case")
        ->check(CLI::Range(1LL, 1LL << 40));
    run->add_option("--external", ra.externals,
                    "an adapter command (docs/adapter-protocol.md; repeatable): started once per worker, its "
                    "implementation checked like a target");
    run->add_option("--report", ra.report_dir, "write results.json, junit.xml and index.html to this directory");
    run->add_option("--known-failures", ra.known_failures,
                    "ledger of known failures (docs/known-failures.md): matching failures are reported as known "
                    "and do not fail the run; entries whose recorded case no longer fails are reported as stale");
    run->add_option("--plugin", ra.plugins,
                    "shared library of your own targets (include/attncheck/plugin.hpp; repeatable): its targets "
                    "are the run's, --target picks among them and the engine's");
    run->add_option("--oracle", ra.oracle, "where the fp64 oracle runs: auto (GPU for CUDA targets), host or gpu");
    run->add_option("--workers", ra.workers, "workers (default: one per core; threads for cuda, processes for cpu)")
        ->check(CLI::Range(1, 4096));
    run->add_option("--devices", ra.devices,
                    "CUDA devices for the workers: all, or a list like 0,1 (one per worker, "
                    "round robin; default: the current device)");
    run->add_option("--processes", ra.processes, kProcessesHelp)->check(CLI::Range(1, 256));
    run->add_option("--interleave", ra.interleave, kInterleaveHelp)->check(CLI::Range(1, 256));
    run->callback([&rc] { rc = cmd_run(ra); });

    static std::string file, rb, rm;
    static bool rexpect = false;
    auto* repro = app.add_subcommand("repro", "Replay a counterexample (or case) file with the full gate report");
    repro->add_option("file", file, "counterexample or case JSON")->required();
    repro->add_option("--backend", rb, "override the recorded backend");
    repro->add_option("--mutant", rm, "override the recorded mutant (e.g. none: does the production build pass?)");
    repro->add_flag("--expect-gate", rexpect,
                    "exit 1 only if the file's recorded gate is the first to fail; 3 if another gate fails first");
    static std::vector<std::string> rplugins, rexternals;
    repro->add_option("--plugin", rplugins, "shared library holding the recorded target (repeatable)");
    repro->add_option("--external", rexternals, "adapter command serving the recorded target (repeatable)");
    repro->callback([&rc] { rc = cmd_repro(file, rb, rm, rexpect, rplugins, rexternals); });

    static std::string mb;
    static bool mj = false;
    static long long mc = 300;
    static double ms = 60;
    static std::uint64_t mseed = 1;
    static std::vector<std::string> mm, mt;
    static std::string msave;
    auto* mut = app.add_subcommand("mutants", "Run the suite against every mutant: the mutation score");
    mut->add_option("--backend", mb, "cpu or cuda (default: cuda when a device is visible)");
    mut->add_flag("--json", mj,
                  "a JSON array of {mutant, bug_class, target, backend, killed, gate, expected_gate, also_gate, "
                  "gate_as_expected, seconds, cases, shrunk_case}");
    mut->add_option("--cases", mc, "case budget per (mutant, target)")->check(CLI::Range(1LL, 1LL << 40));
    mut->add_option("--seconds", ms, "time budget per (mutant, target)")->check(CLI::PositiveNumber);
    mut->add_option("--seed", mseed, "first RapidCheck seed");
    mut->add_option("--mutant", mm, "only these mutants (repeatable)");
    mut->add_option("--target", mt, "only these targets (repeatable)");
    mut->add_option("--save", msave, "write each shrunk counterexample to this directory");
    mut->callback([&rc] { rc = cmd_mutants(mb, mj, mc, ms, mseed, mm, mt, msave); });
}

ReplayTargets replay_targets(const CounterexampleFile& f, const std::string& backend_override,
                             const std::string& mutant_override, const std::vector<std::string>& plugins,
                             const std::vector<std::string>& externals) {
    ReplayTargets r;
    r.backend =
        backend_override.empty() ? (f.target ? f.backend : resolve_backend("")) : resolve_backend(backend_override);
    const Mutant m = mutant_override.empty() ? f.mutant : mutant_arg(mutant_override);
    std::vector<std::string> names; // the recorded target: a plugin's, an adapter's, or the engine's
    if (f.target) names.push_back(*f.target);
    r.targets = make_run_targets(r.backend, m, names, plugins, externals);
    return r;
}

} // namespace attncheck
