// The fuzz targets' settings from the environment (attncheck campaign
// --fuzzer sets them): where failures go, and a mutant chosen by name
// (ATTNCHECK_FUZZ_MUTANT, ATTNCHECK_FUZZ_MODEL_MUTANT; unset gives `none`).
// A setting the fuzzer cannot run with stops it with a message and exit 2,
// before any input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace attncheck::fuzz {

[[noreturn]] inline void stop(const std::string& why) {
    std::fprintf(stderr, "fuzzer: %s\n", why.c_str());
    std::exit(2);
}

// Where counterexamples and tallies go: ATTNCHECK_FUZZ_OUT, else
// fuzz-counterexamples (in the working directory).
inline std::string out_dir() {
    const char* e = std::getenv("ATTNCHECK_FUZZ_OUT");
    return e && *e ? e : "fuzz-counterexamples";
}

template <class M, class Parse>
M mutant_from_env(const char* var, M none, Parse&& parse) {
    const char* e = std::getenv(var);
    if (!e) return none;
    const auto m = parse(std::string(e));
    if (!m) stop(std::string(var) + ": unknown mutant '" + e + "'");
    return *m;
}

} // namespace attncheck::fuzz
