// The kernel families, written once. Each family lives in kernels/<name>/:
// <name>.cu (CUDA), <name>_cpu.cpp (the portable C++ twin: same tiles, same
// online softmax, same splits and merge, rounding where the CUDA version
// rounds) and <name>.hpp (what both halves must agree on: tile sizes, the
// support rule, the mutants it carries). CMakeLists.txt reads the names from
// this list; kernels/registry.cpp turns it into targets.
//
// F(name, online softmax, split-KV merge, CUDA shared-memory tile reuse, paged KV cache, description)
// The features decide which mutants the family can carry (family_carries in
// engine/targets/mutant.hpp); a family without the paged KV feature refuses
// cases with Case.page_size > 0.
#pragma once

#include <optional>
#include <string>

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/mutant.hpp"
#include "engine/targets/observation.hpp"
#include "engine/targets/precision_profile.hpp"
#include "engine/targets/target.hpp"

#define ATTNCHECK_FAMILIES(F)                                                                                        \
    F(decode, true, false, false, true,                                                                              \
      "decode: one query token per sequence against its KV cache (contiguous or paged), one block per (sequence, q " \
      "head)")                                                                                                       \
    F(decode_gqa, true, false, false, false,                                                                         \
      "GQA decode: one block per (sequence, kv head) serving its whole q-head group")                                \
    F(decode_split, true, true, false, true,                                                                         \
      "split-KV decode (flash-decoding): partial softmax per split, then an LSE merge; contiguous or paged KV")      \
    F(flash_prefill, true, false, true, false,                                                                       \
      "flash prefill: tiled online softmax on tensor cores, causal bottom-right, chunked")                           \
    F(standard_path, false, false, false, false, "standard path: cuBLAS Q.K^T, a softmax kernel, cuBLAS P.V")

namespace attncheck::kernels {

enum class Family {
#define ATTNCHECK_FAMILY_ENUM(name, ...) name,
    ATTNCHECK_FAMILIES(ATTNCHECK_FAMILY_ENUM)
#undef ATTNCHECK_FAMILY_ENUM
};

constexpr FamilyFeatures features_of(Family f) {
    switch (f) {
#define ATTNCHECK_FAMILY_FEATURES(name, online, split, tiles, paged, ...) \
    case Family::name:                                                    \
        return FamilyFeatures{online, split, tiles, paged};
        ATTNCHECK_FAMILIES(ATTNCHECK_FAMILY_FEATURES)
#undef ATTNCHECK_FAMILY_FEATURES
    }
    return {};
}

// The mutants a family's CPU twin carries, and its CUDA version for the one
// dtype mutant kernels are instantiated for (fp16: keeps the build from
// multiplying; production kernels exist for every dtype).
template <Family F>
constexpr bool carries_cpu(Mutant m) {
    return family_carries(features_of(F), m, false);
}
template <Family F>
constexpr bool carries_cuda(Mutant m) {
    return family_carries(features_of(F), m, true);
}
// CUDA mutant kernels are instantiated for one input type only (fp16); a
// family's CUDA dispatch for type T passes MutantsBuilt = (T is fp16).
template <Family F, bool MutantsBuilt>
constexpr bool cuda_builds(Mutant m) {
    return MutantsBuilt ? carries_cuda<F>(m) : m == Mutant::none;
}

// Empty when family f carries mutant m on backend b; otherwise why not.
std::string mutant_unsupported(const char* family, FamilyFeatures f, Mutant m, Backend b);

// Each family implements these four functions under its own prefix:
//   <f>_unsupported(case, backend, mutant): empty when the family computes
//       the case correctly with that mutant built in; otherwise the reason.
//   <f>_profile(case, backend): how the variant rounds.
//   <f>_cpu / <f>_cuda(problem, mutant, probe): run it. Both throw
//       UnsupportedCase on an unsupported case, poison their outputs before
//       computing and check guard bands after. <f>_cuda exists only in
//       builds with ATTNCHECK_HAVE_CUDA.
#define ATTNCHECK_DECLARE_FAMILY(f, ...)                                                                \
    std::string f##_unsupported(const Case& c, Backend b, Mutant m);                                    \
    PrecisionProfile f##_profile(const Case& c, Backend b);                                             \
    Observation f##_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe); \
    Observation f##_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe);
ATTNCHECK_FAMILIES(ATTNCHECK_DECLARE_FAMILY)
#undef ATTNCHECK_DECLARE_FAMILY

} // namespace attncheck::kernels
