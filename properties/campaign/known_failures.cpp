#include "properties/campaign/known_failures.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "properties/campaign/counterexample.hpp"
#include "properties/gates/case_check.hpp"

namespace attncheck {

using nlohmann::json;

namespace {

long long longest(const std::vector<int>& lens) {
    long long m = 0;
    for (int x : lens) m = std::max<long long>(m, x);
    return m;
}

// The `when` keys other than dtype, written once: the member each sets and
// the case's value it is checked against.
struct FlagKey {
    const char* key;
    std::optional<bool> CasePredicate::*member;
    bool (*of)(const Case&);
};
const FlagKey kFlagKeys[] = {
    {"causal", &CasePredicate::causal, [](const Case& c) { return c.causal; }},
    {"window", &CasePredicate::window, [](const Case& c) { return c.window > 0; }},
    {"gqa", &CasePredicate::gqa, [](const Case& c) { return c.n_q_heads != c.n_kv_heads; }},
};
struct RangeKey {
    const char* key;
    std::optional<IntRangePredicate> CasePredicate::*member;
    long long (*of)(const Case&);
};
const RangeKey kRangeKeys[] = {
    {"head_dim", &CasePredicate::head_dim, [](const Case& c) -> long long { return c.head_dim; }},
    {"q_heads", &CasePredicate::q_heads, [](const Case& c) -> long long { return c.n_q_heads; }},
    {"kv_heads", &CasePredicate::kv_heads, [](const Case& c) -> long long { return c.n_kv_heads; }},
    {"batch", &CasePredicate::batch, [](const Case& c) -> long long { return c.batch(); }},
    {"q_len", &CasePredicate::q_len, [](const Case& c) { return longest(c.q_lens); }},
    {"kv_len", &CasePredicate::kv_len, [](const Case& c) { return longest(c.kv_lens); }},
    {"splits", &CasePredicate::splits, [](const Case& c) -> long long { return c.num_splits; }},
};

template <class Table>
const auto* find_key(const Table& table, const std::string& key) {
    for (const auto& k : table)
        if (key == k.key) return &k;
    return static_cast<decltype(&table[0])>(nullptr);
}

} // namespace

bool CasePredicate::holds(const Case& c) const {
    if (!dtypes.empty() && std::find(dtypes.begin(), dtypes.end(), c.dtype) == dtypes.end()) return false;
    for (const FlagKey& f : kFlagKeys)
        if (this->*f.member && *(this->*f.member) != f.of(c)) return false;
    for (const RangeKey& r : kRangeKeys)
        if (this->*r.member && !(this->*r.member)->holds(r.of(c))) return false;
    return true;
}

bool KnownFailure::matches(const Target& t, const std::string& failed_gate, const Case& c) const {
    return (target == t.name() || target == t.full_name()) && gate == failed_gate && when.holds(c);
}

int Ledger::match(const Target& t, const std::string& failed_gate, const Case& c) const {
    for (size_t i = 0; i < entries.size(); ++i)
        if (entries[i].matches(t, failed_gate, c)) return static_cast<int>(i);
    return -1;
}

namespace {

CasePredicate parse_when(const json& w, const std::string& where) {
    CasePredicate p;
    if (!w.is_object()) throw std::invalid_argument(where + ": 'when' must be an object");
    for (const auto& item : w.items()) {
        // Not a structured binding: the lambdas below capture it (clang 14, the fuzz build, cannot).
        const std::string key = item.key();
        const json& v = item.value();
        const std::string at = where + ": when." + key;
        auto boolean = [&]() -> bool {
            if (!v.is_boolean()) throw std::invalid_argument(at + " must be true or false");
            return v.get<bool>();
        };
        auto range = [&]() -> IntRangePredicate {
            if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer() ||
                v[0].get<long long>() > v[1].get<long long>())
                throw std::invalid_argument(at + " must be [lo, hi], two integers with lo <= hi");
            return {v[0].get<long long>(), v[1].get<long long>()};
        };
        if (key == "dtype") {
            if (!v.is_array() || v.empty()) throw std::invalid_argument(at + " must be a list of dtype names");
            for (const json& d : v) {
                const auto dt = d.is_string() ? parse_dtype(d.get<std::string>()) : std::nullopt;
                if (!dt) throw std::invalid_argument(at + ": unknown dtype " + d.dump());
                p.dtypes.push_back(*dt);
            }
        } else if (const FlagKey* f = find_key(kFlagKeys, key)) {
            p.*(f->member) = boolean();
        } else if (const RangeKey* r = find_key(kRangeKeys, key)) {
            p.*(r->member) = range();
        } else {
            throw std::invalid_argument(at +
                                        ": unknown key (dtype, causal, window, gqa, head_dim, q_heads, "
                                        "kv_heads, batch, q_len, kv_len, splits)");
        }
    }
    return p;
}

std::string required_string(const json& e, const char* key, const std::string& where) {
    if (!e.contains(key) || !e.at(key).is_string() || e.at(key).get<std::string>().empty())
        throw std::invalid_argument(fmt::format("{}: '{}' must be a non-empty string", where, key));
    return e.at(key).get<std::string>();
}

} // namespace

Ledger load_ledger(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument(fmt::format("--known-failures {}: cannot read it", path));
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::exception& e) {
        throw std::invalid_argument(fmt::format("--known-failures {}: not JSON: {}", path, e.what()));
    }
    if (!j.is_object() || !j.contains("version") || j.at("version") != 1 || !j.contains("entries") ||
        !j.at("entries").is_array())
        throw std::invalid_argument(
            fmt::format("--known-failures {}: expected {{\"version\": 1, \"entries\": [...]}}", path));
    Ledger l;
    l.path = path;
    for (size_t i = 0; i < j.at("entries").size(); ++i) {
        const json& e = j.at("entries")[i];
        const std::string where = fmt::format("--known-failures {}: entry {}", path, i);
        if (!e.is_object()) throw std::invalid_argument(where + ": not an object");
        for (const auto& [key, v] : e.items())
            if (key != "target" && key != "gate" && key != "when" && key != "reason" && key != "link" && key != "case")
                throw std::invalid_argument(where + ": unknown key '" + key +
                                            "' (target, gate, when, reason, link, case)");
        KnownFailure k;
        k.target = required_string(e, "target", where);
        k.gate = required_string(e, "gate", where);
        if (!find_gate(k.gate)) throw std::invalid_argument(where + ": unknown gate '" + k.gate + "'");
        k.reason = required_string(e, "reason", where);
        if (e.contains("when")) k.when = parse_when(e.at("when"), where);
        if (e.contains("link")) k.link = required_string(e, "link", where);
        if (e.contains("case")) {
            // Relative to the ledger's own folder, so a ledger and its cases move together.
            const std::filesystem::path cp = required_string(e, "case", where);
            k.case_path = (cp.is_relative() ? std::filesystem::path(path).parent_path() / cp : cp).string();
        }
        l.entries.push_back(std::move(k));
    }
    return l;
}

std::vector<StaleEntry> stale_entries(const Ledger& l, std::vector<std::unique_ptr<Target>>& targets) {
    std::vector<StaleEntry> out;
    for (size_t i = 0; i < l.entries.size(); ++i) {
        const KnownFailure& k = l.entries[i];
        if (k.case_path.empty()) continue;
        const CounterexampleFile f = load_counterexample(k.case_path);
        for (auto& t : targets) {
            if (k.target != t->name() && k.target != t->full_name()) continue;
            if (!t->unsupported(f.kase).empty()) continue;
            const CaseCheck chk = check_case(*t, f.kase, gate_pointers({}), /*stop_at_first=*/false);
            bool fails = false;
            for (const auto& o : chk.outcomes)
                fails = fails || (o.gate->name == k.gate && o.verdict.status == GateStatus::fail);
            if (!fails)
                out.push_back({static_cast<int>(i), t->full_name(),
                               fmt::format("{} no longer fails {} on {}", k.case_path, k.gate, t->full_name())});
        }
    }
    return out;
}

} // namespace attncheck
