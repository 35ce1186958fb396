// The mutation score: the property suite run against every mutant build of
// every target that carries it. A mutant is killed on a target when a
// campaign finds a failing case within the budget; the row records the gate
// that killed it, the seconds to the first failure, and the shrunk case.
// A surviving mutant means a missing gate or a weak generator; a mutant
// killed by a gate other than the catalogue's (engine/targets/mutant.hpp)
// means a gate that no longer names its bug, and fails the score as well.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/targets/mutant.hpp"
#include "properties/campaign/campaign.hpp"

namespace attncheck {

struct MutantRow {
    Mutant mutant = Mutant::none;
    std::string target; // family
    Backend backend = Backend::cpu;
    bool killed = false;
    std::string gate;
    double seconds = 0;  // to the first failure (or the whole budget)
    long long cases = 0; // cases checked before the first failure
    std::optional<Counterexample> shrunk;
    std::string note; // e.g. why the target was skipped

    // Killed, and by a gate the catalogue expects (gate_expected_for).
    bool killed_as_expected() const { return killed && gate_expected_for(mutant, gate); }
};

struct MutationOptions {
    Backend backend = Backend::cpu;
    std::vector<Mutant> mutants;      // empty: all that apply to the backend
    std::vector<std::string> targets; // empty: all families
    long long cases = 300;            // per (mutant, target)
    double seconds = 60;              // per (mutant, target)
    std::uint64_t seed = 1;
    std::function<void(const MutantRow&)> on_row;
};

std::vector<MutantRow> run_mutation_score(const MutationOptions& opt);
// The score holds when every row is killed by an expected gate.
bool mutation_score_holds(const std::vector<MutantRow>& rows);
std::string mutation_table(const std::vector<MutantRow>& rows);
// One object per row: mutant, bug_class, target, backend, killed, gate,
// expected_gate, also_gate (an array of the other gates that may be first,
// only when the catalogue has any), gate_as_expected, seconds, cases,
// shrunk_case, shrunk_size.
std::string mutation_json(const std::vector<MutantRow>& rows);

} // namespace attncheck
