// The known-failure ledger (`attncheck run --known-failures FILE`): failures
// someone has looked at and written down, so that a campaign reports them as
// known instead of failing, still fails on anything new, and says when an
// entry no longer fails (stale).
//
// The file (JSON; docs/known-failures.md):
//   {"version": 1, "entries": [
//     {"target": "decode" | "cpu/decode+scale_twice",   name or full name
//      "gate": "effective_scale",
//      "when": {"dtype": ["bf16"], "head_dim": [64, 256], "causal": true, ...},   optional, all must hold
//      "reason": "one line", "link": "optional URL",
//      "case": "optional counterexample file (relative to the ledger's folder):
//               replayed to find stale entries"}]}
// `when` keys: dtype (list of names), causal, window, gqa (booleans), and
// ranges [lo, hi] of head_dim, q_heads, kv_heads, batch, q_len, kv_len (the
// longest sequence's), splits. Anything else is an error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/targets/target.hpp"

namespace attncheck {

struct IntRangePredicate {
    long long lo = 0, hi = 0;
    bool holds(long long x) const { return lo <= x && x <= hi; }
};

struct CasePredicate {
    std::vector<DType> dtypes; // empty: any
    std::optional<bool> causal, window, gqa;
    std::optional<IntRangePredicate> head_dim, q_heads, kv_heads, batch, q_len, kv_len, splits;
    bool holds(const Case& c) const;
};

struct KnownFailure {
    std::string target, gate;
    CasePredicate when;
    std::string reason, link, case_path;
    bool matches(const Target& t, const std::string& failed_gate, const Case& c) const;
};

struct Ledger {
    std::string path;
    std::vector<KnownFailure> entries;
    // The index of the first entry matching, or -1.
    int match(const Target& t, const std::string& failed_gate, const Case& c) const;
};

// Throws std::invalid_argument naming the file, the entry and the field.
Ledger load_ledger(const std::string& path);

// An entry whose recorded case no longer fails its gate on the targets it
// names (those among `targets`): the bug was fixed, or the entry is wrong.
struct StaleEntry {
    int entry = 0;
    std::string target, detail;
};
std::vector<StaleEntry> stale_entries(const Ledger& l, std::vector<std::unique_ptr<Target>>& targets);

} // namespace attncheck
