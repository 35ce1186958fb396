// `attncheck shrink FILE`: shrinks a counterexample that RapidCheck did not
// draw -- a fuzzer's finding, a hand-written case, an adapter's report --
// with the greedy case shrinker (properties/campaign/case_shrinker.hpp), on
// the target the file records, keeping the gate it records as the first to
// fail. The shrunk counterexample is written beside the file (or to --out)
// and replays with `attncheck repro`. Limits: a bare case file records no
// target or gate to shrink against, and a case that no longer fails as
// recorded has nothing to keep; both are bad input (exit 2). A model case
// file is not an attention Case and is refused the same way.
#include <filesystem>

#include <fmt/format.h>

#include "app/commands.hpp"
#include "properties/campaign/case_shrinker.hpp"
#include "properties/campaign/counterexample.hpp"

namespace attncheck {

namespace {

struct ShrinkArgs {
    std::string file, out, backend, mutant;
    int max_evaluations = ShrinkOptions{}.max_evaluations;
    std::vector<std::string> plugins, externals;
};

int cmd_shrink(const ShrinkArgs& a) {
    const CounterexampleFile f = load_counterexample(a.file);
    if (!f.target || !f.gate)
        throw std::invalid_argument(
            fmt::format("{}: a bare case, not a counterexample file: shrinking needs the target "
                        "and the gate it failed (attncheck repro runs a bare case on every "
                        "target and writes neither)",
                        a.file));
    ReplayTargets rt = replay_targets(f, a.backend, a.mutant, a.plugins, a.externals);
    if (rt.targets.empty())
        throw std::invalid_argument(
            fmt::format("{}: no target {} on backend {}", a.file, *f.target, backend_name(rt.backend)));
    Target& t = *rt.targets.front();
    ShrinkOptions opt;
    opt.max_evaluations = a.max_evaluations;
    fmt::print("attncheck shrink {}\nrecorded: {} failed gate {}: {}\n", a.file, t.full_name(), *f.gate, f.summary);
    std::fflush(stdout);
    Counterexample ce;
    ShrinkStats st;
    try {
        ce = shrink_counterexample(t, f.kase, *f.gate, opt, &st);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("{}: {}", a.file, e.what()));
    }
    ce.seed = f.seed;
    const std::filesystem::path parent = std::filesystem::path(a.file).parent_path();
    const std::string dir = !a.out.empty() ? a.out : parent.empty() ? std::string(".") : parent.string();
    const std::string path = save_counterexample(ce, dir);
    fmt::print("\nbefore: {}\n", ce.shrink_trajectory.front());
    fmt::print("after:  {}\n", case_shape_summary(ce.kase));
    fmt::print("{} step(s) kept of {} candidate(s) run; {}\n", ce.shrink_steps, st.evaluations,
               st.budget_spent        ? "stopped by --max-evaluations (it may shrink further)"
               : ce.shrink_steps == 0 ? "the case was already minimal"
                                      : "no single reduction applies any more");
    for (const ShrinkStep& s : st.steps) fmt::print("  {:18} {}\n", s.reduction, s.shape);
    fmt::print("\n{}\n", ce.report);
    std::string extra;
    for (const auto& pl : a.plugins) extra += " --plugin " + pl;
    for (const auto& ex : a.externals) extra += " --external '" + ex + "'";
    fmt::print("counterexample: {}\nreplay:         attncheck repro {}{}\n", path, path, extra);
    return 0;
}

} // namespace

void register_shrink_command(CLI::App& app, int& rc) {
    static ShrinkArgs a;
    auto* s = app.add_subcommand(
        "shrink",
        "Shrink a counterexample file (a fuzzer's, a hand-written one) to a smaller case failing the same gate");
    s->add_option("file", a.file, "counterexample JSON (with target and gate)")->required();
    s->add_option("--out", a.out, "directory for the shrunk counterexample (default: the file's)");
    s->add_option("--max-evaluations", a.max_evaluations, "cap on candidate cases run (default 300)")
        ->check(CLI::Range(0, 1 << 20));
    s->add_option("--backend", a.backend, "override the recorded backend");
    s->add_option("--mutant", a.mutant, "override the recorded mutant");
    s->add_option("--plugin", a.plugins, "shared library holding the recorded target (repeatable)");
    s->add_option("--external", a.externals, "adapter command serving the recorded target (repeatable)");
    s->callback([&rc] { rc = cmd_shrink(a); });
}

} // namespace attncheck
