// Counterexample files: the shrunk Case plus what it failed on, as JSON:
//
//   {"attncheck_counterexample": 1, "target": "decode_gqa", "backend": "cpu",
//    "mutant": "gqa_map_mod", "gate": "gqa", "summary": "...", "seed": 123,
//    "case": { ...the Case, docs/case-format.md... }}
//
// `attncheck repro FILE` replays one bit for bit (the Case materializes to
// the same inputs everywhere). A bare Case file is accepted too: repro then
// runs every gate on every target of the chosen backend.
#pragma once

#include <optional>
#include <string>

#include "properties/campaign/campaign.hpp"

namespace attncheck {

struct CounterexampleFile {
    Case kase;
    std::optional<std::string> target, gate; // absent for a bare Case
    Backend backend = Backend::cpu;
    Mutant mutant = Mutant::none;
    std::string summary;
    std::uint64_t seed = 0;
};

std::string counterexample_json(const Counterexample& ce);
// Writes dir/<target>-<mutant>-<gate>-<hash>.json; returns the path.
std::string save_counterexample(const Counterexample& ce, const std::string& dir);
// Throws CaseError with a clear message for anything malformed.
CounterexampleFile load_counterexample(const std::string& path);

} // namespace attncheck
