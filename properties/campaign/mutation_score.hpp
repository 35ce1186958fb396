// The mutation score: the property suite run against every mutant build of
// every target that carries it. A mutant is killed on a target when a
// campaign finds a failing case within the budget; the row records the gate
// that killed it, the seconds to the first failure, and the shrunk case.
// A surviving mutant means a missing gate or a weak generator.
#pragma once

#include <functional>
#include <string>
#include <vector>

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
std::string mutation_table(const std::vector<MutantRow>& rows);
std::string mutation_json(const std::vector<MutantRow>& rows);

} // namespace attncheck
