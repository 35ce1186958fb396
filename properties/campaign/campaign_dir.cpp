#include "properties/campaign/campaign_dir.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/model_case.hpp"
#include "properties/campaign/counterexample.hpp"
#include "properties/campaign/parallel_run.hpp"

namespace attncheck {

namespace fs = std::filesystem;
using nlohmann::json;

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CampaignFailure, key, target, gate, summary, file, first_round, seen)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CoveragePoint, seconds, execs, coverage, features, corpus)

namespace {

json read_json(const fs::path& p) {
    std::ifstream in(p);
    if (!in) throw std::runtime_error(fmt::format("campaign: cannot read {}", p.string()));
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw std::invalid_argument(fmt::format("campaign: {} is not valid JSON: {}", p.string(), e.what()));
    }
}

} // namespace

std::string shape_class(const Case& c) {
    const bool decode = std::all_of(c.q_lens.begin(), c.q_lens.end(), [](int q) { return q <= 1; });
    const char* mask = !c.causal ? "nomask" : c.window > 0 ? "window" : "causal";
    const char* dims = c.head_dim <= 64 ? "d64" : c.head_dim <= 128 ? "d128" : "d256";
    return fmt::format("{}-{}-{}-{}-{}", dtype_name(c.dtype), decode ? "decode" : "prefill",
                       c.n_q_heads == c.n_kv_heads ? "mha" : "gqa", mask, dims);
}

CampaignState load_campaign_state(const std::string& dir) {
    CampaignState s;
    const fs::path p = fs::path(dir) / "status.json";
    if (!fs::exists(p)) return s;
    const json j = read_json(p);
    try {
        s.rounds = j.at("rounds").get<long long>();
        s.cases = j.at("cases").get<long long>();
        s.crashes = j.at("crashes").get<long long>();
        s.seconds = j.at("seconds").get<double>();
        s.tallies = tallies_from_json(j.at("tallies"));
        s.failures = j.at("failures").get<std::vector<CampaignFailure>>();
        // Fuzzer figures: absent from directories of property rounds only.
        s.execs = j.value("execs", 0LL);
        s.crash_inputs = j.value("crash_inputs", 0LL);
        if (j.contains("coverage_history"))
            s.coverage_history = j.at("coverage_history").get<std::vector<CoveragePoint>>();
    } catch (const json::exception& e) {
        throw std::invalid_argument(fmt::format("campaign: {} is malformed: {}", p.string(), e.what()));
    }
    return s;
}

void save_campaign_state(const std::string& dir, const CampaignState& s) {
    json j;
    j["rounds"] = s.rounds;
    j["cases"] = s.cases;
    j["crashes"] = s.crashes;
    j["seconds"] = s.seconds;
    j["cases_per_s"] = s.cases_per_second();
    j["tallies"] = tallies_json(s.tallies);
    j["failures"] = s.failures;
    if (s.execs > 0 || !s.coverage_history.empty()) {
        j["execs"] = s.execs;
        j["execs_per_s"] = s.execs_per_second();
        j["crash_inputs"] = s.crash_inputs;
        j["coverage_history"] = s.coverage_history;
        if (!s.coverage_history.empty()) {
            const CoveragePoint& last = s.coverage_history.back();
            j["coverage"] = last.coverage;
            j["features"] = last.features;
            j["corpus"] = last.corpus;
        }
    }
    fs::create_directories(dir);
    const fs::path tmp = fs::path(dir) / "status.json.tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        if (!out) throw std::runtime_error(fmt::format("campaign: cannot write {}", tmp.string()));
    }
    fs::rename(tmp, fs::path(dir) / "status.json");
}

namespace {

// Adds a failure of class f.key: counted when the class is known, else its
// counterexample `file` is copied to DIR/failures. True when it was new.
bool add_failure(CampaignState& s, const std::string& dir, CampaignFailure f, const std::string& file) {
    const auto it =
        std::find_if(s.failures.begin(), s.failures.end(), [&](const CampaignFailure& x) { return x.key == f.key; });
    if (it != s.failures.end()) {
        it->seen += f.seen;
        return false;
    }
    fs::create_directories(fs::path(dir) / "failures");
    std::string name = f.key;
    std::replace(name.begin(), name.end(), '/', '-');
    std::replace(name.begin(), name.end(), '+', '-');
    const fs::path kept = fs::path(dir) / "failures" / (name + ".json");
    if (fs::absolute(file) != fs::absolute(kept)) fs::copy_file(file, kept, fs::copy_options::overwrite_existing);
    f.file = kept.string();
    s.failures.push_back(std::move(f));
    return true;
}

} // namespace

int fold_round(CampaignState& s, const std::string& dir, long long round, const std::string& round_dir) {
    const fs::path results = fs::path(round_dir) / "report" / "results.json";
    if (!fs::exists(results)) return 0; // the round's child died before writing its report
    const json j = read_json(results);
    s.cases += j.at("cases").get<long long>();
    s.seconds += j.at("wall_seconds").get<double>();
    int fresh = 0;
    for (const json& t : j.at("targets")) {
        add_tallies(s.tallies, tallies_from_json(t.at("tallies")));
        if (!t.contains("failure")) continue;
        const std::string path = t.at("failure").at("path").get<std::string>();
        if (!path.empty()) fresh += fold_counterexample(s, dir, round, path);
    }
    return fresh;
}

bool fold_counterexample(CampaignState& s, const std::string& dir, long long round, const std::string& file) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (looks_like_model_case(text.str())) { // the model step fuzzer's: classed by gate and stage
        const json f = read_json(file).at("failure");
        const std::string gate = f.at("gate").get<std::string>();
        return add_failure(s, dir,
                           {"model/" + gate + "/" + f.value("stage", std::string("-")),
                            "model",
                            gate,
                            f.value("summary", std::string()),
                            {},
                            round,
                            1},
                           file);
    }
    const CounterexampleFile ce = load_counterexample(file);
    if (!ce.target || !ce.gate) throw std::invalid_argument(fmt::format("campaign: {} names no target and gate", file));
    const std::string key = *ce.target + "/" + *ce.gate + "/" + shape_class(ce.kase);
    return add_failure(s, dir, {key, *ce.target, *ce.gate, ce.summary, {}, round, 1}, file);
}

int fold_fuzz_out(CampaignState& s, const std::string& dir, long long round, const std::string& out_dir) {
    if (!fs::is_directory(out_dir)) return 0;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(out_dir))
        if (e.path().extension() == ".json") files.push_back(e.path());
    std::sort(files.begin(), files.end()); // the same failure first on every rerun
    int fresh = 0;
    for (const fs::path& p : files) {
        if (p.filename().string().rfind("tallies-", 0) == 0) {
            const json j = read_json(p);
            s.cases += j.at("cases").get<long long>();
            add_tallies(s.tallies, tallies_from_json(j.at("tallies")));
        } else {
            fresh += fold_counterexample(s, dir, round, p.string());
        }
    }
    return fresh;
}

int merge_campaign(CampaignState& s, const std::string& dir, const std::string& other_dir) {
    if (!fs::exists(fs::path(other_dir) / "status.json"))
        throw std::invalid_argument(fmt::format("campaign --merge: {} has no status.json", other_dir));
    const CampaignState o = load_campaign_state(other_dir);
    s.rounds += o.rounds;
    s.cases += o.cases;
    s.crashes += o.crashes;
    s.seconds += o.seconds;
    s.execs += o.execs;
    s.crash_inputs += o.crash_inputs;
    // Tasks fuzz side by side: the merged history is each task's, in time order.
    s.coverage_history.insert(s.coverage_history.end(), o.coverage_history.begin(), o.coverage_history.end());
    std::stable_sort(s.coverage_history.begin(), s.coverage_history.end(),
                     [](const CoveragePoint& a, const CoveragePoint& b) { return a.seconds < b.seconds; });
    add_tallies(s.tallies, o.tallies);
    int fresh = 0;
    for (const CampaignFailure& f : o.failures) fresh += add_failure(s, dir, f, f.file);
    return fresh;
}

} // namespace attncheck
