// Deliberate bugs (mutants) the engine can be built with, and the catalogue
// of bug classes they stand for (../shared/bug-classes.md, in code). A kernel
// takes its mutant as a template parameter and tests it with `if constexpr`,
// so the production instantiation (Mutant::none) carries no extra branch.
//
// Both lists are written once, below, as X-macros: the enum, the names, the
// descriptions, `attncheck list`, the mutation score's expected gates and the
// dispatch into kernels (engine/targets/mutant_dispatch.hpp) all read them.
// Adding a mutant: one ATTNCHECK_MUTANTS line, its mutation point in the
// kernels (kernels/common/attention_common.hpp or the family's file), and
// nothing else unless its scope is new.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attncheck {

// BUG(id, title, gate that exists for it, where it was seen)
#define ATTNCHECK_BUG_CLASSES(BUG)                                                                                \
    BUG(scale, "softmax scale missing, applied twice, or 1/d instead of 1/sqrt(d)", "effective_scale",            \
        "investigations (the scale gate)")                                                                        \
    BUG(mask_off_by_one, "causal mask off by one: the diagonal dropped or a past key masked", "causal",           \
        "investigations (mask timing and value)")                                                                 \
    BUG(fully_masked_row, "a fully masked row gives NaN or garbage instead of O = 0, LSE = -inf", "fully_masked", \
        "flashinfer #4452, pytorch #103963")                                                                      \
    BUG(finite_mask_sentinel, "masked scores filled with a finite sentinel (-1e4, -5e4)", "shift_invariance",     \
        "flashinfer #4267, #4450")                                                                                \
    BUG(empty_split_merge, "-inf - -inf when merging an empty tile or split; merge without LSE weights",          \
        "split_invariance", "flashinfer PR #4401, #4051; vLLM PR #39148")                                         \
    BUG(causal_alignment, "causal mask aligned top-left when q_len != kv_len", "causal",                          \
        "cutlass #2336, onnxruntime #29020, cudnn-frontend PR #493")                                              \
    BUG(gqa_mapping, "wrong GQA q-head to kv-head map, or K and V from different heads", "gqa",                   \
        "HipKittens PR #22, TensorRT-LLM PR #6538")                                                               \
    BUG(batch_offsets, "per-sequence strides or offsets wrong only for batch > 1", "batch_invariance",            \
        "flash-attention PR #2388, #2573")                                                                        \
    BUG(missing_row_max, "exp(s) without the row max: overflow for large logits", "row_max",                      \
        "investigations (row max / overflow)")                                                                    \
    BUG(normalization, "wrong normalizer: a key left out of the row sum, or no rescale of the accumulator",       \
        "normalization", "investigations (normalization)")                                                        \
    BUG(low_precision_accumulation, "fp16 overflow or rounding in scores or accumulators", "parity",              \
        "llama.cpp PR #17558, #13991, #6646")                                                                     \
    BUG(padding_as_data, "partial tiles and padding read as data", "padding_nan",                                 \
        "flash-attention #334, pytorch #196678")                                                                  \
    BUG(out_of_bounds, "KV index overflow, out-of-bounds reads or writes", "determinism",                         \
        "vLLM #50427, llama.cpp PR #14840")                                                                       \
    BUG(race, "races and missing barriers", "determinism", "llama.cpp PR #13438, #28358")                         \
    BUG(window_off_by_one, "sliding-window off by one", "causal", "transformers #39408, flash-attention #1133")   \
    BUG(q_loading, "not every q channel reaches the dot product", "q_completeness", "investigations (Q loading)") \
    BUG(kv_cache_position, "KV cache appended at the wrong position, rotary position wrong", "decode_prefill",    \
        "flash-attention #772, #1417")                                                                            \
    BUG(paged_kv, "paged KV cache: a key read through the wrong page, off by one at a page boundary", "paging",   \
        "block tables of serving engines (vLLM, FlashInfer paged decode)")                                        \
    BUG(oracle_wrong, "the oracle itself is wrong", "selfcheck", "cutlass #2336")

enum class BugClass : int {
#define ATTNCHECK_BUG_ENUM(id, ...) id,
    ATTNCHECK_BUG_CLASSES(ATTNCHECK_BUG_ENUM)
#undef ATTNCHECK_BUG_ENUM
};

// Which kernel families can carry a mutant.
enum class MutantScope {
    every_family,    // every family, both backends
    online_softmax,  // families with an online (tiled) softmax: not the standard path
    split_merge,     // families that merge split-KV partials
    cuda_tile_reuse, // CUDA kernels that reuse shared-memory tiles behind a barrier
    paged_kv,        // families that read a paged KV cache through a block table
};

// X(name, bug class, gate expected to kill it first, other gates that may kill
//   it first (space-separated, "" if none), scope, what it models)
// The other gates are for mutants whose first visible symptom depends on the
// case drawn; the reason is in the comment above the line.
#define ATTNCHECK_MUTANTS(X)                                                                                           \
    X(scale_missing, scale, "effective_scale", "", every_family, "softmax scale never applied")                        \
    X(scale_twice, scale, "effective_scale", "", every_family, "scale applied to Q and again to the scores")           \
    /* a sentinel shows first as a row that should be empty averaging V, when the case has one */                      \
    X(finite_mask_sentinel, finite_mask_sentinel, "shift_invariance", "fully_masked", every_family,                    \
      "masked scores filled with -1e4 (flashinfer #4267, #4450): fully masked rows average V")                         \
    X(mask_diagonal_dropped, mask_off_by_one, "causal", "", every_family, "causal mask j < i instead of j <= i")       \
    X(mask_past_key, mask_off_by_one, "causal", "", every_family, "off-by-one masks the key just before the diagonal") \
    X(no_row_max, missing_row_max, "row_max", "", every_family,                                                        \
      "exp(s) without the row max: overflow for large logits")                                                         \
    /* shrinks to one visible key: the row sum is then 0 and P = inf, which row_max's finiteness check sees */         \
    X(normalizer_drops_key, normalization, "row_max", "normalization", every_family, "row sum misses the first key")   \
    X(gqa_map_mod, gqa_mapping, "gqa", "", every_family,                                                               \
      "GQA map q_head % n_kv (HipKittens PR #22, TensorRT-LLM PR #6538)")                                              \
    X(v_wrong_head, gqa_mapping, "gqa", "", every_family, "V base offset uses the wrong kv head")                      \
    X(partial_q_load, q_loading, "q_completeness", "", every_family, "register array of q left with only q[0] set")    \
    X(online_no_rescale, normalization, "normalization", "", online_softmax,                                           \
      "online softmax forgets to rescale the accumulator")                                                             \
    /* an empty split NaNs the row: fully_masked sees it when the row has no key, split_invariance otherwise */        \
    X(split_merge_no_lse, empty_split_merge, "fully_masked", "split_invariance", split_merge,                          \
      "split-KV merge without LSE weights; -inf - -inf on an empty split (flashinfer PR #4401)")                       \
    X(top_left_causal, causal_alignment, "causal", "", every_family,                                                   \
      "causal mask aligned top-left when q_len != kv_len (cutlass #2336)")                                             \
    /* the fp16 row sum breaks normalization first where the family sums P in fp16; where only P.V is fp16 */          \
    /* (flash prefill's mma, the standard path's GEMM) parity is the gate that sees it; on an fp32 case whose */       \
    /* rows see at most one key (nothing to sum), effective_scale's two-key probe is the first fp16-rounded P */       \
    X(fp16_accumulation, low_precision_accumulation, "normalization", "parity effective_scale", every_family,          \
      "accumulator kept in fp16 (llama.cpp PR #17558)")                                                                \
    X(missing_barrier, race, "determinism", "", cuda_tile_reuse,                                                       \
      "a __syncthreads before shared-memory tile reuse removed")                                                       \
    X(page_boundary_off_by_one, paged_kv, "paging", "", paged_kv,                                                      \
      "page index from (j - 1) / page_size: a page's first key is read from the previous page")

enum class Mutant : int {
    none = 0,
#define ATTNCHECK_MUTANT_ENUM(name, ...) name,
    ATTNCHECK_MUTANTS(ATTNCHECK_MUTANT_ENUM)
#undef ATTNCHECK_MUTANT_ENUM
        count_
};

struct BugClassInfo {
    BugClass id;
    const char* name;
    const char* title;
    const char* gate;    // the gate that exists for it
    const char* seen_in; // issue threads, for reading
};

struct MutantInfo {
    Mutant id;
    const char* name;
    BugClass bug_class;
    const char* expected_gate; // the gate expected to kill it first
    const char* also_gate;     // other gates that may be first on some cases, space-separated ("" if none)
    MutantScope scope;
    const char* models; // the real bug it stands for
    bool cuda_only() const { return scope == MutantScope::cuda_tile_reuse; }
};

const std::vector<BugClassInfo>& all_bug_classes();
const std::vector<MutantInfo>& all_mutants();
const MutantInfo* mutant_info(Mutant m); // nullptr for none
const char* mutant_name(Mutant m);
const char* bug_class_name(BugClass b);
const char* scope_name(MutantScope s);
std::optional<Mutant> parse_mutant(std::string_view name);
// The gates of a MutantInfo's also_gate, one by one.
std::vector<std::string_view> also_gates(const MutantInfo& m);
// True when `gate` is a gate the catalogue expects to kill m first: its
// expected_gate or one of its also_gates.
bool gate_expected_for(Mutant m, std::string_view gate);

// What a kernel family is made of, for deciding which mutants it can carry.
struct FamilyFeatures {
    bool online_softmax = false;  // tiled online softmax (rescales an accumulator)
    bool split_merge = false;     // merges split-KV partials
    bool cuda_tile_reuse = false; // CUDA kernel reuses shared-memory tiles behind a barrier
    bool paged_kv = false;        // reads a paged KV cache (Case.page_size > 0) through a block table
};

constexpr MutantScope mutant_scope(Mutant m) {
    switch (m) {
#define ATTNCHECK_MUTANT_SCOPE(name, bug, gate, also, scope, ...) \
    case Mutant::name:                                            \
        return MutantScope::scope;
        ATTNCHECK_MUTANTS(ATTNCHECK_MUTANT_SCOPE)
#undef ATTNCHECK_MUTANT_SCOPE
        default:
            return MutantScope::every_family;
    }
}

// Does a family with these features carry mutant m on this backend? The one
// rule every family's dispatch and unsupported() use.
constexpr bool family_carries(FamilyFeatures f, Mutant m, bool cuda) {
    if (m == Mutant::none) return true;
    if (static_cast<int>(m) < 0 || m >= Mutant::count_) return false;
    switch (mutant_scope(m)) {
        case MutantScope::every_family:
            return true;
        case MutantScope::online_softmax:
            return f.online_softmax;
        case MutantScope::split_merge:
            return f.split_merge;
        case MutantScope::cuda_tile_reuse:
            return cuda && f.cuda_tile_reuse;
        case MutantScope::paged_kv:
            return f.paged_kv;
    }
    return false;
}

} // namespace attncheck
