#include "engine/mutant.hpp"

namespace attncheck {

const std::vector<MutantInfo>& all_mutants() {
    static const std::vector<MutantInfo> v = {
        {Mutant::scale_missing, "scale_missing", "softmax scale never applied", "all", false},
        {Mutant::scale_twice, "scale_twice", "scale applied to Q and again to the scores", "all", false},
        {Mutant::finite_mask_sentinel, "finite_mask_sentinel",
         "masked scores filled with -1e4 (flashinfer #4267, #4450): fully masked rows average V", "all", false},
        {Mutant::mask_diagonal_dropped, "mask_diagonal_dropped", "causal mask j < i instead of j <= i", "all", false},
        {Mutant::mask_past_key, "mask_past_key", "off-by-one masks the key just before the diagonal", "all", false},
        {Mutant::no_row_max, "no_row_max", "exp(s) without the row max: overflow for large logits", "all", false},
        {Mutant::normalizer_drops_key, "normalizer_drops_key", "row sum misses the first key", "all", false},
        {Mutant::gqa_map_mod, "gqa_map_mod", "GQA map q_head % n_kv (HipKittens PR #22, TensorRT-LLM PR #6538)",
         "all", false},
        {Mutant::v_wrong_head, "v_wrong_head", "V base offset uses the wrong kv head", "all", false},
        {Mutant::partial_q_load, "partial_q_load", "register array of q left with only q[0] set", "all", false},
        {Mutant::online_no_rescale, "online_no_rescale", "online softmax forgets to rescale the accumulator",
         "tiled and split variants", false},
        {Mutant::split_merge_no_lse, "split_merge_no_lse",
         "split-KV merge without LSE weights; -inf - -inf on an empty split (flashinfer PR #4401)", "split decode",
         false},
        {Mutant::top_left_causal, "top_left_causal",
         "causal mask aligned top-left when q_len != kv_len (cutlass #2336)", "all", false},
        {Mutant::fp16_accumulation, "fp16_accumulation", "accumulator kept in fp16 (llama.cpp PR #17558)", "all",
         false},
        {Mutant::missing_barrier, "missing_barrier", "a __syncthreads before shared-memory tile reuse removed",
         "CUDA flash prefill", true},
    };
    return v;
}

const char* mutant_name(Mutant m) {
    if (m == Mutant::none) return "none";
    for (const auto& i : all_mutants())
        if (i.id == m) return i.name;
    return "?";
}

std::optional<Mutant> parse_mutant(std::string_view name) {
    if (name == "none") return Mutant::none;
    for (const auto& i : all_mutants())
        if (name == i.name) return i.id;
    return std::nullopt;
}

}  // namespace attncheck
