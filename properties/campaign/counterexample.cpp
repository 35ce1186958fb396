#include "properties/campaign/counterexample.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attncheck {

namespace {

using nlohmann::json;

std::uint64_t fnv1a(const std::string& s) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
    return h;
}

} // namespace

std::string counterexample_json(const Counterexample& ce) {
    json j;
    j["attncheck_counterexample"] = 1;
    j["target"] = ce.target;
    j["backend"] = backend_name(ce.backend);
    j["mutant"] = mutant_name(ce.mutant);
    j["gate"] = ce.gate;
    j["summary"] = ce.summary;
    j["seed"] = ce.seed;
    j["case"] = json::parse(case_to_json(ce.kase));
    return j.dump(2) + "\n";
}

std::string save_counterexample(const Counterexample& ce, const std::string& dir) {
    std::filesystem::create_directories(dir);
    const std::string text = counterexample_json(ce);
    const std::string path = fmt::format("{}/{}-{}-{}-{:08x}.json", dir, ce.target, mutant_name(ce.mutant), ce.gate,
                                         fnv1a(case_to_json(ce.kase)) & 0xffffffffu);
    std::ofstream f(path);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << text;
    return path;
}

CounterexampleFile load_counterexample(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw CaseError(fmt::format("{}: cannot open", path));
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw CaseError(fmt::format("{}: malformed JSON: {}", path, e.what()));
    }
    CounterexampleFile out;
    if (!j.is_object() || !j.contains("attncheck_counterexample")) {
        out.kase = parse_case(text); // a bare Case
        return out;
    }
    auto str = [&](const char* key) -> std::string {
        if (!j.contains(key) || !j[key].is_string())
            throw CaseError(fmt::format("{}: field '{}' missing or not a string", path, key));
        return j[key].get<std::string>();
    };
    for (const auto& [key, _] : j.items())
        if (key != "attncheck_counterexample" && key != "target" && key != "backend" && key != "mutant" &&
            key != "gate" && key != "summary" && key != "seed" && key != "case")
            throw CaseError(fmt::format("{}: unknown field '{}'", path, key));
    if (j["attncheck_counterexample"] != 1)
        throw CaseError(fmt::format("{}: unsupported counterexample version", path));
    out.target = str("target");
    out.gate = str("gate");
    if (!find_gate(*out.gate)) throw CaseError(fmt::format("{}: unknown gate '{}'", path, *out.gate));
    const std::string b = str("backend");
    if (b != "cpu" && b != "cuda") throw CaseError(fmt::format("{}: backend must be cpu or cuda, not '{}'", path, b));
    out.backend = b == "cpu" ? Backend::cpu : Backend::cuda;
    const auto m = parse_mutant(str("mutant"));
    if (!m) throw CaseError(fmt::format("{}: unknown mutant '{}'", path, str("mutant")));
    out.mutant = *m;
    if (j.contains("summary") && j["summary"].is_string()) out.summary = j["summary"].get<std::string>();
    if (j.contains("seed") && j["seed"].is_number_unsigned()) out.seed = j["seed"].get<std::uint64_t>();
    if (!j.contains("case")) throw CaseError(fmt::format("{}: field 'case' missing", path));
    try {
        out.kase = parse_case(j["case"].dump());
    } catch (const CaseError& e) {
        throw CaseError(fmt::format("{}: case: {}", path, e.what()));
    }
    return out;
}

} // namespace attncheck
