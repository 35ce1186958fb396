// The one mutant dispatch: a run-time Mutant to the kernel template built
// for it. Every family (CPU twin and CUDA host code) calls
//
//   dispatch_mutant<&carries>(m, family_name, [&](auto tag) {
//       return run<decltype(tag)::value>(...);
//   });
//
// where `carries` is a constexpr predicate: mutants it rejects are never
// instantiated (the build stays small) and are refused with UnsupportedCase.
// The case labels come from ATTNCHECK_MUTANTS, so a new mutant needs no edit
// here. Plain C++17 (nvcc compiles it).
#pragma once

#include <string>
#include <type_traits>

#include "engine/targets/mutant.hpp"
#include "engine/targets/target.hpp"

namespace attncheck {

template <Mutant M>
using MutantTag = std::integral_constant<Mutant, M>;

template <bool (*Carries)(Mutant), class F>
auto dispatch_mutant(Mutant m, const char* family, F&& f) -> decltype(f(MutantTag<Mutant::none>{})) {
    switch (m) {
        case Mutant::none:
            return f(MutantTag<Mutant::none>{});
#define ATTNCHECK_MUTANT_DISPATCH(name, ...)                                      \
    case Mutant::name:                                                            \
        if constexpr (Carries(Mutant::name)) return f(MutantTag<Mutant::name>{}); \
        break;
            ATTNCHECK_MUTANTS(ATTNCHECK_MUTANT_DISPATCH)
#undef ATTNCHECK_MUTANT_DISPATCH
        default:
            break;
    }
    throw UnsupportedCase(std::string(family) + ": mutant " + mutant_name(m) + " not built into this variant");
}

} // namespace attncheck
