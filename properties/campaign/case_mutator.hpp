// Structure-aware mutations of an attention Case, for libFuzzer's custom
// mutator (fuzz/fuzz_attention_gates.cpp) and anything else that wants to
// walk from one case to a near one. Byte-level mutations of a case mostly
// give invalid JSON or move nothing that matters; these move one feature
// along an edge where the bug classes of ../shared/bug-classes.md live:
//   shape: a length to a tile edge +-1 (16, 32, 64, 128 and multiples), a
//   split count to the tile count +-1 or past it (empty chunks), q_len past
//   kv_len, an empty sequence, a ragged batch (a sequence added or removed),
//   another GQA ratio, another head dim or dtype the target has;
//   values: magnitudes toward the dtype's largest finite value or toward 0,
//   an outlier channel, attention-sink keys, a NaN or inf in one query
//   element, tied K or V rows, another data seed;
//   features: causal on or off, a window at its edges (1, kv_len +- 1), the
//   softmax scale.
// Every result is valid (validate), fits the DrawLimits and the target's
// capabilities, and passes the caller's `supported` predicate; a mutation
// that cannot make such a case returns the input unchanged (and says so).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/case_distribution.hpp"
#include "engine/case/rng.hpp"
#include "properties/campaign/target_capabilities.hpp"

namespace attncheck {

#define ATTNCHECK_CASE_MUTATIONS(X)                                       \
    X(tile_edge, "a length to a tile edge +-1")                           \
    X(split_edge, "the split count to the tile count +-1, or past it")    \
    X(q_past_kv, "a sequence's q_len past its kv_len")                    \
    X(empty_sequence, "a sequence's q_len or kv_len to 0")                \
    X(ragged_batch, "a sequence of another length added, or one removed") \
    X(gqa_ratio, "another n_q_heads / n_kv_heads")                        \
    X(head_dim, "another head dim the target has")                        \
    X(dtype, "another dtype the target has")                              \
    X(magnitude, "Q, K or V scaled toward the dtype's limit or toward 0") \
    X(outlier, "an outlier channel added (or its factor raised)")         \
    X(sink, "attention-sink keys added")                                  \
    X(special_value, "a NaN or +-inf in one query element")               \
    X(ties, "K or V rows made equal, or made distinct again")             \
    X(reseed, "another data seed")                                        \
    X(mask, "causal switched on or off")                                  \
    X(window_edge, "a sliding window of 1, or about kv_len")              \
    X(scale, "another softmax scale")                                     \
    X(page_edge, "paged KV: another page size, a cache length at a page edge +-1, or contiguous")

enum class CaseMutation : int {
#define ATTNCHECK_MUTATION_ENUM(name, ...) name,
    ATTNCHECK_CASE_MUTATIONS(ATTNCHECK_MUTATION_ENUM)
#undef ATTNCHECK_MUTATION_ENUM
};

struct CaseMutationInfo {
    CaseMutation id;
    const char* name;
    const char* what;
};
// Every mutation, in table order (index = enum value).
const std::vector<CaseMutationInfo>& case_mutations();
inline int case_mutation_count() { return static_cast<int>(case_mutations().size()); }
inline const char* case_mutation_name(CaseMutation m) { return case_mutations()[static_cast<std::size_t>(m)].name; }

struct MutationContext {
    Capabilities caps;
    DrawLimits limits;
    // The target's own refusal (Target::unsupported(c).empty()); none: every valid case.
    std::function<bool(const Case&)> supported;
};

// One mutation of `c` (chosen by rng, or `kind` when given). `applied` says
// which one changed the case; it is unset when none could.
Case mutate_case(const Case& c, const MutationContext& ctx, Rng& rng, CaseMutation* applied = nullptr);
Case mutate_case_as(const Case& c, const MutationContext& ctx, Rng& rng, CaseMutation kind, bool* changed = nullptr);

// Shape and features of one case with the data recipe of the other, fitted
// to both the limits and the target (libFuzzer's cross-over).
Case cross_cases(const Case& shape_from, const Case& data_from, const MutationContext& ctx, Rng& rng);

// Makes `c` fit: lengths under the limits and the work cap, q_len <= 1 for
// decode-only targets, outlier channels and specials inside the shape, the
// recipe inside the dtype. Returns false when the result is still invalid
// or unsupported.
bool fit_case(Case& c, const MutationContext& ctx);

} // namespace attncheck
