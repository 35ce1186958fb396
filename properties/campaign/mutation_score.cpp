#include "properties/campaign/mutation_score.hpp"
#include "kernels/registry.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attncheck {

std::vector<MutantRow> run_mutation_score(const MutationOptions& opt) {
    std::vector<MutantRow> rows;
    std::vector<Mutant> mutants = opt.mutants;
    if (mutants.empty())
        for (const auto& mi : all_mutants())
            if (!(mi.cuda_only() && opt.backend == Backend::cpu)) mutants.push_back(mi.id);
    for (Mutant m : mutants) {
        for (auto& t : make_targets(opt.backend, m)) {
            if (!opt.targets.empty() &&
                std::find(opt.targets.begin(), opt.targets.end(), t->name()) == opt.targets.end())
                continue;
            // A target that does not carry this mutant rejects every shape.
            if (probe_capabilities(*t).empty()) continue;
            MutantRow row;
            row.mutant = m;
            row.target = t->name();
            row.backend = opt.backend;
            CampaignOptions co;
            co.seed = opt.seed;
            co.cases = opt.cases;
            co.seconds = opt.seconds;
            const CampaignResult r = run_campaign(*t, co);
            row.cases = r.cases;
            if (r.failure) {
                row.killed = true;
                row.gate = r.failure->gate;
                row.seconds = r.seconds_to_failure;
                row.shrunk = r.failure;
            } else {
                row.seconds = r.seconds;
                row.note = fmt::format("survived {} cases ({} unsupported draws)", r.cases, r.unsupported);
            }
            if (opt.on_row) opt.on_row(row);
            rows.push_back(std::move(row));
        }
    }
    return rows;
}

bool mutation_score_holds(const std::vector<MutantRow>& rows) {
    if (rows.empty()) return false;
    for (const auto& r : rows)
        if (!r.killed_as_expected()) return false;
    return true;
}

namespace {

std::string expected_gates(Mutant m) {
    const MutantInfo* i = mutant_info(m);
    if (!i) return "-";
    std::string s = i->expected_gate;
    for (std::string_view g : also_gates(*i)) s += fmt::format("|{}", g);
    return s;
}

} // namespace

std::string mutation_table(const std::vector<MutantRow>& rows) {
    std::string out = fmt::format("{:24} {:14} {:24} {:18} {:31} {:>8} {:>6}  {}\n", "mutant", "target", "result",
                                  "gate", "expected gate", "seconds", "cases", "shrunk case");
    int as_expected = 0, unexpected = 0, survived = 0;
    for (const auto& r : rows) {
        const char* result = "SURVIVED";
        if (r.killed_as_expected()) {
            result = "killed";
            ++as_expected;
        } else if (r.killed) {
            // Still a failure: the gate that fired does not name the bug.
            result = "KILLED (UNEXPECTED GATE)";
            ++unexpected;
        } else {
            ++survived;
        }
        out += fmt::format("{:24} {:14} {:24} {:18} {:31} {:>8.2f} {:>6}  {}\n", mutant_name(r.mutant), r.target,
                           result, r.killed ? r.gate : "-", expected_gates(r.mutant), r.seconds, r.cases,
                           r.shrunk ? case_shape_summary(r.shrunk->kase) : r.note);
    }
    out += fmt::format(
        "mutation score: {} of {} killed by the expected gate; {} killed by an unexpected gate; {} survived\n",
        as_expected, rows.size(), unexpected, survived);
    return out;
}

std::string mutation_json(const std::vector<MutantRow>& rows) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
        const MutantInfo* info = mutant_info(r.mutant);
        nlohmann::json j;
        j["mutant"] = mutant_name(r.mutant);
        j["bug_class"] = info ? nlohmann::json(bug_class_name(info->bug_class)) : nlohmann::json(nullptr);
        j["target"] = r.target;
        j["backend"] = backend_name(r.backend);
        j["killed"] = r.killed;
        j["gate"] = r.killed ? nlohmann::json(r.gate) : nlohmann::json(nullptr);
        j["expected_gate"] = info ? nlohmann::json(info->expected_gate) : nlohmann::json(nullptr);
        if (info && *info->also_gate) {
            j["also_gate"] = nlohmann::json::array();
            for (std::string_view g : also_gates(*info)) j["also_gate"].push_back(std::string(g));
        }
        j["gate_as_expected"] = r.killed_as_expected();
        j["seconds"] = r.seconds;
        j["cases"] = r.cases;
        if (r.shrunk) {
            j["shrunk_case"] = nlohmann::json::parse(case_to_json(r.shrunk->kase));
            j["shrunk_size"] = case_shape_summary(r.shrunk->kase);
        } else {
            j["shrunk_case"] = nullptr;
        }
        arr.push_back(j);
    }
    return arr.dump(2) + "\n";
}

} // namespace attncheck
