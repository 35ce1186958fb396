// `attncheck list`, `run`, `repro` and `mutants`: the property suite from the
// command line (properties/). Every failure prints its gate report, the path
// of the counterexample file it wrote, and the one command that replays it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "app/commands.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/counterexample.hpp"
#include "properties/campaign/mutation_score.hpp"

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
    int max_len = 0;        // 0: the backend's default
    long long max_work = 0; // 0: the backend's default
};

// The oracle (fp64, on the CPU) bounds how large a case can be; a CUDA
// target is fast enough that longer prefills are worth their oracle time.
GenLimits limits_for(Backend b, int max_len, long long max_work) {
    GenLimits lim;
    if (b == Backend::cuda) {
        lim.max_len = 520;
        lim.max_work = 4000000;
    }
    if (max_len > 0) lim.max_len = max_len;
    if (max_work > 0) lim.max_work = max_work;
    return lim;
}

Mutant mutant_arg(const std::string& name) {
    const auto m = parse_mutant(name);
    if (!m) throw std::invalid_argument(fmt::format("unknown mutant '{}' (attncheck list shows them)", name));
    return *m;
}

std::vector<std::unique_ptr<Target>> selected_targets(Backend b, Mutant m, const std::vector<std::string>& names) {
    std::vector<std::unique_ptr<Target>> out;
    if (names.empty()) return make_targets(b, m);
    for (const auto& n : names) {
        auto t = make_target(n, b, m);
        if (!t) throw std::invalid_argument(fmt::format("unknown target '{}' (attncheck list shows them)", n));
        out.push_back(std::move(t));
    }
    return out;
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
                   *m.also_gate ? std::string(m.also_gate) + ")" : std::string(), scope_name(m.scope));
    return 0;
}

int cmd_run(const RunArgs& a) {
    const Backend b = resolve_backend(a.backend);
    const Mutant m = mutant_arg(a.mutant);
    const auto gates = gate_pointers(a.gates);
    auto targets = selected_targets(b, m, a.targets);
    const bool tty = isatty(fileno(stderr));
    fmt::print("attncheck run: backend {}, {} target(s), {} gate(s), seed {}, {}\n", backend_name(b), targets.size(),
               gates.size(), a.seed,
               a.seconds > 0 ? fmt::format("{} s", a.seconds) : fmt::format("{} cases per target", a.cases));
    fmt::print("{}\n\n", device_line());
    std::map<std::string, GateTally> total;
    int failures = 0;
    long long cases = 0;
    for (auto& t : targets) {
        CampaignOptions co;
        co.seed = a.seed;
        co.gates = gates;
        co.limits = limits_for(b, a.max_len, a.max_work);
        if (a.seconds > 0) {
            co.seconds = a.seconds / targets.size();
            co.cases = 1LL << 40;
        } else {
            co.cases = a.cases;
        }
        const std::string name = t->full_name();
        co.progress = [&](long long n, double s) {
            if (tty) fmt::print(stderr, "\r  {:28} {:6} cases  {:6.1f} s", name, n, s);
        };
        const CampaignResult r = run_campaign(*t, co);
        if (tty) fmt::print(stderr, "\r{:60}\r", "");
        cases += r.cases;
        for (const auto& [g, tl] : r.tallies) {
            total[g].pass += tl.pass;
            total[g].fail += tl.fail;
            total[g].skip += tl.skip;
        }
        if (!r.failure) {
            fmt::print("  {:28} ok      {:6} cases  {:6.1f} s{}\n", name, r.cases, r.seconds,
                       r.cases == 0 ? "  (no case it supports was drawn)" : "");
            continue;
        }
        ++failures;
        const Counterexample& ce = *r.failure;
        const std::string path = save_counterexample(ce, a.out_dir);
        fmt::print("  {:28} FAILED  after {} cases, {:.1f} s; shrunk in {} steps\n\n{}\n", name, r.cases,
                   r.seconds_to_failure, ce.shrink_steps, ce.report);
        fmt::print("counterexample: {}\nreplay:         attncheck repro {}\n\n", path, path);
    }
    fmt::print("\n{:18} {:>8} {:>8} {:>8}\n", "gate", "held", "FAILED", "skipped");
    for (const Gate* g : gates) {
        const GateTally tl = total.count(g->name) ? total[g->name] : GateTally{};
        fmt::print("{:18} {:>8} {:>8} {:>8}\n", g->name, tl.pass, tl.fail, tl.skip);
    }
    fmt::print("\n{} cases; {}\n", cases,
               failures == 0 ? "every gate held" : fmt::format("{} target(s) FAILED", failures));
    return failures == 0 ? 0 : 1;
}

int cmd_repro(const std::string& file, const std::string& backend_override, const std::string& mutant_override) {
    const CounterexampleFile f = load_counterexample(file);
    const Backend b =
        backend_override.empty() ? (f.target ? f.backend : resolve_backend("")) : resolve_backend(backend_override);
    const Mutant m = mutant_override.empty() ? f.mutant : mutant_arg(mutant_override);
    std::vector<std::unique_ptr<Target>> targets;
    if (f.target) {
        auto t = make_target(*f.target, b, m);
        if (!t) throw std::invalid_argument(fmt::format("{}: unknown target '{}'", file, *f.target));
        targets.push_back(std::move(t));
    } else {
        targets = make_targets(b, m);
    }
    fmt::print("attncheck repro {}\n", file);
    if (f.gate) fmt::print("recorded: {} failed gate {}: {}\n", f.target.value_or("?"), *f.gate, f.summary);
    int failed = 0, ran = 0;
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
            fmt::print("\n{}", failure_report(*t, f.kase, *fo));
        }
    }
    if (ran == 0)
        throw std::invalid_argument(
            fmt::format("{}: no target of backend {} supports this case", file, backend_name(b)));
    fmt::print("\n{}\n", failed ? fmt::format("{} target(s) FAILED", failed) : "every gate held");
    return failed ? 1 : 0;
}

int cmd_mutants(const std::string& backend, bool json, long long cases, double seconds, std::uint64_t seed,
                const std::vector<std::string>& mutants, const std::vector<std::string>& targets,
                const std::string& save) {
    MutationOptions mo;
    mo.backend = resolve_backend(backend);
    for (const auto& n : mutants) mo.mutants.push_back(mutant_arg(n));
    mo.targets = targets;
    mo.cases = cases;
    mo.seconds = seconds;
    mo.seed = seed;
    const bool tty = isatty(fileno(stderr));
    mo.on_row = [&](const MutantRow& r) {
        if (tty || !json)
            fmt::print(stderr, "  {:24} {:14} {}\n", mutant_name(r.mutant), r.target,
                       r.killed ? fmt::format("killed by {} in {:.2f} s", r.gate, r.seconds) : "SURVIVED");
    };
    const auto rows = run_mutation_score(mo);
    if (!save.empty())
        for (const auto& r : rows)
            if (r.shrunk) save_counterexample(*r.shrunk, save);
    if (json)
        fmt::print("{}", mutation_json(rows));
    else
        fmt::print("\n{}", mutation_table(rows));
    bool all = !rows.empty();
    for (const auto& r : rows) all = all && r.killed;
    return all ? 0 : 1;
}

} // namespace

void register_property_commands(CLI::App& app, int& rc) {
    auto* list = app.add_subcommand("list", "Targets (with backend), gates and mutants");
    list->callback([&rc] { rc = cmd_list(); });

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
    run->callback([&rc] { rc = cmd_run(ra); });

    static std::string file, rb, rm;
    auto* repro = app.add_subcommand("repro", "Replay a counterexample (or case) file with the full gate report");
    repro->add_option("file", file, "counterexample or case JSON")->required();
    repro->add_option("--backend", rb, "override the recorded backend");
    repro->add_option("--mutant", rm, "override the recorded mutant (e.g. none: does the production build pass?)");
    repro->callback([&rc] { rc = cmd_repro(file, rb, rm); });

    static std::string mb;
    static bool mj = false;
    static long long mc = 300;
    static double ms = 60;
    static std::uint64_t mseed = 1;
    static std::vector<std::string> mm, mt;
    static std::string msave;
    auto* mut = app.add_subcommand("mutants", "Run the suite against every mutant: the mutation score");
    mut->add_option("--backend", mb, "cpu or cuda (default: cuda when a device is visible)");
    mut->add_flag("--json", mj, "a JSON array of {mutant, backend, killed, gate, seconds, shrunk_case}");
    mut->add_option("--cases", mc, "case budget per (mutant, target)")->check(CLI::Range(1LL, 1LL << 40));
    mut->add_option("--seconds", ms, "time budget per (mutant, target)")->check(CLI::PositiveNumber);
    mut->add_option("--seed", mseed, "first RapidCheck seed");
    mut->add_option("--mutant", mm, "only these mutants (repeatable)");
    mut->add_option("--target", mt, "only these targets (repeatable)");
    mut->add_option("--save", msave, "write each shrunk counterexample to this directory");
    mut->callback([&rc] { rc = cmd_mutants(mb, mj, mc, ms, mseed, mm, mt, msave); });
}

} // namespace attncheck
