// Deliberate bugs (mutants) the engine can be built with, one per known bug
// class (see ../shared/bug-classes.md and docs/mutants.md). A kernel takes
// its mutant as a template parameter and tests it with `if constexpr`, so the
// production instantiation (Mutant::none) carries no extra branch.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attncheck {

enum class Mutant : int {
    none = 0,
    scale_missing,          // scores not multiplied by the scale
    scale_twice,            // scale applied twice
    finite_mask_sentinel,   // masked scores set to -1e4 instead of -inf
    mask_diagonal_dropped,  // causal: a query does not see its own position
    mask_past_key,          // causal: the key just before the diagonal is masked
    no_row_max,             // exp(s) without subtracting the row max
    normalizer_drops_key,   // the first visible key is left out of the row sum
    gqa_map_mod,            // kv_head = q_head % n_kv_heads
    v_wrong_head,           // V read from kv head (h + 1) % n_kv_heads
    partial_q_load,         // only q[0] reaches the dot product
    online_no_rescale,      // online softmax: accumulator not rescaled on a new max
    split_merge_no_lse,     // split-KV merge averages partials, NaN on an empty split
    top_left_causal,        // causal mask aligned top-left when q_len != kv_len
    fp16_accumulation,      // accumulators rounded to fp16 after every add
    missing_barrier,        // CUDA: a __syncthreads between tile reuse removed
    count_
};

struct MutantInfo {
    Mutant id;
    const char* name;
    const char* models;    // the real bug it stands for
    const char* variants;  // which variants carry it
    bool cuda_only;
};

const std::vector<MutantInfo>& all_mutants();
const char* mutant_name(Mutant m);
std::optional<Mutant> parse_mutant(std::string_view name);

}  // namespace attncheck
