// A mutant chosen by an environment variable, for fuzz targets that can run
// a mutant build (ATTNCHECK_FUZZ_MUTANT, ATTNCHECK_FUZZ_MODEL_MUTANT): unset
// gives `none`; an unknown name stops the fuzzer with a message and exit 2.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace attncheck::fuzz {

template <class M, class Parse>
M mutant_from_env(const char* var, M none, Parse&& parse) {
    const char* e = std::getenv(var);
    if (!e) return none;
    const auto m = parse(std::string(e));
    if (!m) {
        std::fprintf(stderr, "%s: unknown mutant '%s'\n", var, e);
        std::exit(2);
    }
    return *m;
}

} // namespace attncheck::fuzz
