#include "engine/targets/mutant.hpp"

#include <algorithm>

namespace attncheck {

const std::vector<BugClassInfo>& all_bug_classes() {
    static const std::vector<BugClassInfo> v = {
#define ATTNCHECK_BUG_INFO(id, title, gate, seen) {BugClass::id, #id, title, gate, seen},
        ATTNCHECK_BUG_CLASSES(ATTNCHECK_BUG_INFO)
#undef ATTNCHECK_BUG_INFO
    };
    return v;
}

const std::vector<MutantInfo>& all_mutants() {
    static const std::vector<MutantInfo> v = {
#define ATTNCHECK_MUTANT_INFO(name, bug, gate, also, scope, models) \
    {Mutant::name, #name, BugClass::bug, gate, also, MutantScope::scope, models},
        ATTNCHECK_MUTANTS(ATTNCHECK_MUTANT_INFO)
#undef ATTNCHECK_MUTANT_INFO
    };
    return v;
}

const MutantInfo* mutant_info(Mutant m) {
    for (const auto& i : all_mutants())
        if (i.id == m) return &i;
    return nullptr;
}

const char* mutant_name(Mutant m) {
    if (m == Mutant::none) return "none";
    const MutantInfo* i = mutant_info(m);
    return i ? i->name : "?";
}

const char* bug_class_name(BugClass b) {
    for (const auto& i : all_bug_classes())
        if (i.id == b) return i.name;
    return "?";
}

const char* scope_name(MutantScope s) {
    switch (s) {
        case MutantScope::every_family:
            return "every family";
        case MutantScope::online_softmax:
            return "online-softmax families";
        case MutantScope::split_merge:
            return "split-KV merge";
        case MutantScope::cuda_tile_reuse:
            return "CUDA shared-memory tiles";
        case MutantScope::paged_kv:
            return "paged KV caches";
    }
    return "?";
}

std::optional<Mutant> parse_mutant(std::string_view name) {
    if (name == "none") return Mutant::none;
    for (const auto& i : all_mutants())
        if (name == i.name) return i.id;
    return std::nullopt;
}

std::vector<std::string_view> also_gates(const MutantInfo& m) {
    std::vector<std::string_view> out;
    const std::string_view s = m.also_gate;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t j = std::min(s.find(' ', i), s.size());
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j + 1;
    }
    return out;
}

bool gate_expected_for(Mutant m, std::string_view gate) {
    const MutantInfo* i = mutant_info(m);
    if (!i) return false;
    if (gate == i->expected_gate) return true;
    for (std::string_view g : also_gates(*i))
        if (gate == g) return true;
    return false;
}

} // namespace attncheck
