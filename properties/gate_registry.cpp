// The gates and their order. Specific gates run first so that the gate that
// catches a bug names it: structural ones (mask, empty rows, head map) before
// numeric ones, normalization before the scale (the scale gate assumes P is
// a distribution), metamorphic ones (target against itself) after, and
// oracle parity, which catches nearly anything that changes numbers, last. ../shared/bug-classes.md maps each bug class
// to its gate; docs/gates.md lists them for users.
#include "properties/gate.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck {

const std::vector<Gate>& all_gates() {
    static const std::vector<Gate> v = {
        {"causal", "future keys change nothing (bitwise); masked P exactly 0; every past key weighted",
         "mask off by one, causal alignment, window off by one", &gates::causal},
        {"fully_masked", "a row with no visible key gives O = 0, LSE = -inf", "NaN on empty rows, finite sentinels",
         &gates::fully_masked},
        {"gqa", "q head h reads kv head h / group; GQA equals repeated-KV MHA", "GQA map, V from the wrong head",
         &gates::gqa},
        {"row_max", "max exp <= 1; finite outputs; O inside the hull of attended V", "missing row max, overflow",
         &gates::row_max},
        {"q_completeness", "every q channel reaches the dot product", "partial Q load", &gates::q_completeness},
        {"normalization", "P sums to 1; constant V returns V; one-hot V returns P",
         "wrong normalizer, missing rescale, fp16 row sum", &gates::normalization},
        {"effective_scale", "the softmax sees scale * q.k, the scale applied once", "scale missing / twice / 1/d",
         &gates::effective_scale},
        {"shift_invariance", "a constant added to a row's logits changes nothing", "finite mask sentinel",
         &gates::shift_invariance},
        {"split_invariance", "any split count, empty splits included, gives the same result",
         "split merge without LSE, NaN on an empty split", &gates::split_invariance},
        {"decode_prefill", "decode equals the last prefill row; a query suffix equals the suffix rows",
         "causal alignment, position offsets", &gates::decode_prefill},
        {"batch_invariance", "a sequence's result does not depend on its neighbours or its batch position",
         "per-sequence strides and offsets", &gates::batch_invariance},
        {"padding_nan", "NaN in unused cache slots between sequences changes nothing",
         "padding read as data, out-of-bounds reads", &gates::padding_nan},
        {"determinism", "reruns give the same bits; guard bands intact", "races, missing barriers, overruns",
         &gates::determinism},
        {"parity", "O and LSE match the fp64 oracle under the error model", "anything that changes the numbers",
         &gates::parity},
    };
    return v;
}

const Gate* find_gate(std::string_view name) {
    for (const Gate& g : all_gates())
        if (name == g.name) return &g;
    return nullptr;
}

}  // namespace attncheck
