// libFuzzer target: bytes -> a Case (the same builder the RapidCheck
// generators use, reading its choices from the bytes) -> every gate on one
// CPU attention target; the first byte picks the target. Failures and
// mutant builds: fuzz/attention_fuzz_common.hpp. fuzz_attention_cases.cpp
// is the structure-aware sibling.
#include "fuzz/attention_fuzz_common.hpp"

using namespace attncheck;
using namespace attncheck::fuzzing;

// The targets are chosen here, before any input: a setting they cannot run
// with stops the fuzzer (exit 2) instead of counting as a crash of an input.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz_entries();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& es = fuzz_entries();
    if (es.empty() || size == 0) return 0;
    FuzzEntry& e = es[data[0] % es.size()];
    BytesChooser ch(data + 1, size - 1);
    GenLimits lim;
    lim.max_work = 60000; // keep each input to a few milliseconds
    const Case c = build_case(e.caps, lim, ch);
    if (!e.target->unsupported(c).empty()) return 0;
    fuzz_check(e, c);
    return 0;
}
