// The gate table, in the order of ATTNCHECK_GATES (properties/gates/gates.hpp).
#include "properties/gates/gate.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck {

const std::vector<Gate>& all_gates() {
    static const std::vector<Gate> v = {
#define ATTNCHECK_GATE_ENTRY(name, invariant, catches) {#name, invariant, catches, &gates::name},
        ATTNCHECK_GATES(ATTNCHECK_GATE_ENTRY)
#undef ATTNCHECK_GATE_ENTRY
    };
    return v;
}

const Gate* find_gate(std::string_view name) {
    for (const Gate& g : all_gates())
        if (name == g.name) return &g;
    return nullptr;
}

} // namespace attncheck
