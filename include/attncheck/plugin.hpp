// Targets in a shared library, for `attncheck run --plugin PATH.so`: your
// kernel checked by the attncheck command line (its worker processes and
// threads, reports, counterexample files) without a test binary of your own.
//
//   #include <attncheck/plugin.hpp>
//   std::vector<std::unique_ptr<attncheck::Target>> my_targets() { ... }
//   ATTNCHECK_PLUGIN(my_targets)
//
// Build it as a MODULE library linking attncheck::headers (headers only:
// the library must not carry its own copy of attncheck), with the same
// compiler and standard library as attncheck itself (Targets cross the
// boundary as C++ objects). The function is called once per worker, so each
// worker gets targets of its own; `--target NAME` picks among them by name().
#pragma once

#include <memory>
#include <vector>

#include "engine/targets/target.hpp"

// Bumped whenever Target's layout or this entry point changes.
#define ATTNCHECK_PLUGIN_ABI 1

#define ATTNCHECK_PLUGIN(make_targets)                                                               \
    extern "C" int attncheck_plugin_abi() { return ATTNCHECK_PLUGIN_ABI; }                           \
    extern "C" void attncheck_plugin_targets(std::vector<std::unique_ptr<attncheck::Target>>* out) { \
        *out = make_targets();                                                                       \
    }
