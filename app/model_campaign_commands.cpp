// `attncheck run --target model` and `attncheck repro MODEL_CASE.json`: the
// model campaign over random model configurations
// (properties/campaign/model_campaign.hpp) and the replay of its
// counterexample files with the per-layer divergence report.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include "app/commands.hpp"

#include "properties/campaign/external_model_check.hpp"
#include "properties/campaign/model_campaign.hpp"

namespace attncheck {

namespace {

ModelMutant model_mutant_arg(const std::string& name) {
    const auto m = parse_model_mutant(name);
    if (m) return *m;
    std::string names;
    for (const auto& i : all_model_mutants()) names += std::string(names.empty() ? "" : ", ") + i.name;
    throw std::invalid_argument(fmt::format("--mutant {}: not a model mutant ({})", name, names));
}

void print_verdict(const ModelVerdict& v) {
    if (v.skipped) {
        fmt::print("not run: {}\n", v.summary);
        return;
    }
    if (v.ok) {
        fmt::print("every model gate held: {}\n", v.summary);
        return;
    }
    fmt::print("gate {} FAILED{}: {}\n", v.gate,
               v.layer >= 0 ? fmt::format(" at layer {}, stage {}", v.layer, v.stage) : std::string(), v.summary);
    if (!v.table.empty()) fmt::print("\n{}\n", v.table);
}

} // namespace

int cmd_run_model(const std::string& backend, const std::string& mutant, long long cases, double seconds,
                  std::uint64_t seed, const std::string& out_dir, const std::string& external) {
    ModelRunSpec spec;
    spec.external = external;
    spec.backend = resolve_backend(backend);
    spec.mutant = model_mutant_arg(mutant);
    spec.cases = seconds > 0 ? (1LL << 40) : cases; // a time budget replaces the case count
    spec.seconds = seconds;
    spec.seed = seed;
    spec.out_dir = out_dir;
    if (!external.empty() && spec.mutant != ModelMutant::none)
        throw std::invalid_argument("--mutant: our model's mutants do not apply to an external model");
    fmt::print("attncheck run --target model: {}, mutant {}, seed {}, {}\n",
               external.empty() ? "backend " + std::string(backend_name(spec.backend)) : "external '" + external + "'",
               model_mutant_name(spec.mutant), seed,
               seconds > 0 ? fmt::format("{} s", seconds) : fmt::format("{} cases", cases));
    std::fflush(stdout);
    const ModelRunReport r = run_model_campaign(spec);
    const std::string skipped =
        r.skipped ? fmt::format("; {} refused by the adapter (latest: {})", r.skipped, r.last_skip) : "";
    if (!r.failure) {
        fmt::print("{} random model cases in {:.1f} s ({:.1f}/s): every model gate held ({}){}\n", r.cases, r.seconds,
                   r.seconds > 0 ? r.cases / r.seconds : 0.0,
                   external.empty() ? "stages, decode_prefill, families" : "logits, decode_prefill", skipped);
        return 0;
    }
    const ModelFailure& f = *r.failure;
    fmt::print("  {} FAILED after {} cases{}, {:.1f} s; shrunk in {} steps to {}\n\n",
               external.empty() ? std::string(backend_name(spec.backend)) + "/model" : r.target, r.cases, skipped,
               r.seconds, f.shrink_steps, model_case_summary(f.shrunk));
    print_verdict(f.verdict);
    fmt::print("\ncounterexample: {}\nreplay:         attncheck repro {}{}\n", f.file, f.file,
               external.empty() ? "" : " --external '" + external + "'");
    return 1;
}

int cmd_repro_model(const std::string& file, const std::string& text, const std::string& backend_override,
                    const std::string& mutant_override, const std::string& external_override) {
    const ModelCase c = model_case_from_json(text);
    std::string recorded_backend = "cpu", recorded_mutant = "none", external = external_override;
    if (const auto j = nlohmann::json::parse(text); j.contains("failure")) {
        recorded_backend = j["failure"].value("backend", recorded_backend);
        recorded_mutant = j["failure"].value("mutant", recorded_mutant);
        if (external.empty()) external = j["failure"].value("external", std::string());
        fmt::print("recorded: {} failed gate {}: {}\n",
                   recorded_mutant == "none" ? "model" : "model+" + recorded_mutant,
                   j["failure"].value("gate", std::string("?")), j["failure"].value("summary", std::string()));
    }
    if (!external.empty()) {
        ModelAdapter adapter(external);
        fmt::print("attncheck repro {}: {} on {}\n", file, model_case_summary(c), adapter.caps().name);
        const ModelVerdict v = check_external_model_case(adapter.restrict(c), adapter);
        print_verdict(v);
        return v.ok ? 0 : 1;
    }
    const Backend b = resolve_backend(backend_override.empty() ? recorded_backend : backend_override);
    const ModelMutant m = model_mutant_arg(mutant_override.empty() ? recorded_mutant : mutant_override);
    fmt::print("attncheck repro {}: {} on {}/model{}\n", file, model_case_summary(c), backend_name(b),
               m == ModelMutant::none ? "" : std::string("+") + model_mutant_name(m));
    const ModelVerdict v = check_model_case(c, b, m);
    print_verdict(v);
    return v.ok ? 0 : 1;
}

int cmd_mutants_model(const std::string& backend, bool json, long long cases, double seconds, std::uint64_t seed,
                      const std::vector<std::string>& mutants, const std::string& save) {
    const Backend b = resolve_backend(backend);
    for (const auto& n : mutants) model_mutant_arg(n); // bad names fail before anything runs
    nlohmann::json rows = nlohmann::json::array();
    int survived = 0, misplaced = 0;
    if (!json)
        fmt::print("{:<24} {:<7} {:>6} {:>8}  {:<16} {:<24} {}\n", "model mutant", "killed", "cases", "seconds", "gate",
                   "caught at", "acts at");
    for (const ModelMutantInfo& info : all_model_mutants()) {
        if (info.id == ModelMutant::none) continue;
        if (!mutants.empty() && std::find(mutants.begin(), mutants.end(), info.name) == mutants.end()) continue;
        ModelRunSpec spec;
        spec.backend = b;
        spec.mutant = info.id;
        spec.cases = cases;
        spec.seconds = seconds;
        spec.seed = seed;
        // Without --save the shrunk case goes to a scratch folder and is removed below.
        spec.out_dir =
            save.empty() ? (std::filesystem::temp_directory_path() / "attncheck-model-mutants").string() : save;
        const ModelRunReport r = run_model_campaign(spec);
        const bool killed = r.failure.has_value();
        const ModelVerdict* v = killed ? &r.failure->verdict : nullptr;
        const int acts_layer = killed ? model_mutant_layer(info.id, r.failure->shrunk.config.layers) : -1;
        const bool placed = killed && v->layer == acts_layer && v->stage == info.first_stage;
        survived += !killed;
        misplaced += killed && !placed;
        if (save.empty() && killed) std::filesystem::remove(r.failure->file);
        rows.push_back({{"mutant", info.name},
                        {"models", info.models},
                        {"backend", backend_name(b)},
                        {"killed", killed},
                        {"cases", r.cases},
                        {"seconds", r.seconds},
                        {"gate", killed ? v->gate : ""},
                        {"layer", killed ? v->layer : -1},
                        {"stage", killed ? v->stage : ""},
                        {"expected_layer", acts_layer},
                        {"expected_stage", info.first_stage},
                        {"placed_as_expected", placed},
                        {"shrunk_case", killed ? model_case_summary(r.failure->shrunk) : ""}});
        if (!json)
            fmt::print(
                "{:<24} {:<7} {:>6} {:>8.2f}  {:<16} {:<24} {}\n", info.name, killed ? "yes" : "NO", r.cases, r.seconds,
                killed ? v->gate : "-", killed ? fmt::format("layer {} {}", v->layer, v->stage) : "-",
                fmt::format("layer {} {}{}", acts_layer, info.first_stage, killed && !placed ? "  (differs)" : ""));
    }
    if (json) fmt::print("{}\n", rows.dump(2));
    return survived == 0 && misplaced == 0 ? 0 : 1;
}

} // namespace attncheck
