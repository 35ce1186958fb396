// The gates, written once, in the order they run. One file each:
// properties/gates/gate_<name>.cpp defines gates::<name>. CMakeLists.txt
// reads the names from this list; gate_registry.cpp turns it into the table.
//
// The order: the gate that kills a bug should name it, so specific gates run
// first. Determinism leads: a race shows as a rerun that changes bits, and
// any later gate that compares two runs would otherwise see it first under
// another name. Paging next: a key read through the wrong page changes
// numbers every later gate would blame on itself. Then structural gates
// (mask, empty rows, head map) before numeric ones, normalization before
// the scale (the scale gate assumes P is a distribution), metamorphic ones
// (target against itself) after, and oracle parity, which catches nearly
// anything that changes numbers, last.
// ../shared/bug-classes.md and engine/targets/mutant.hpp map each bug class
// to its gate; docs/gates.md lists them for users.
//
// G(name, invariant (what must hold, one line), catches (the bug classes it exists for))
#pragma once

#include "properties/gates/gate.hpp"

#define ATTNCHECK_GATES(G)                                                                                      \
    G(determinism, "reruns give the same bits; guard bands intact", "races, missing barriers, overruns")        \
    G(paging, "a paged KV cache gives the contiguous cache's bits, in any page order",                          \
      "page table off by one, a key read through the wrong page")                                               \
    G(causal, "future keys change nothing (every value; +0 = -0); masked P exactly 0; every past key weighted", \
      "mask off by one, causal alignment, window off by one")                                                   \
    G(fully_masked, "a row with no visible key gives O = 0, LSE = -inf", "NaN on empty rows, finite sentinels") \
    G(gqa, "q head h reads kv head h / group; GQA equals repeated-KV MHA", "GQA map, V from the wrong head")    \
    G(row_max, "max exp <= 1; finite outputs; O inside the hull of attended V", "missing row max, overflow")    \
    G(q_completeness, "every q channel reaches the dot product", "partial Q load")                              \
    G(normalization, "P sums to 1; constant V returns V; one-hot V returns P",                                  \
      "wrong normalizer, missing rescale, fp16 row sum")                                                        \
    G(effective_scale, "the softmax sees scale * q.k, the scale applied once", "scale missing / twice / 1/d")   \
    G(shift_invariance, "a constant added to a row's logits changes nothing", "finite mask sentinel")           \
    G(split_invariance, "any split count, empty splits included, gives the same result",                        \
      "split merge without LSE, NaN on an empty split")                                                         \
    G(decode_prefill, "decode equals the last prefill row; a query suffix equals the suffix rows",              \
      "causal alignment, position offsets")                                                                     \
    G(batch_invariance, "a sequence's result does not depend on its neighbours or its batch position",          \
      "per-sequence strides and offsets")                                                                       \
    G(padding_nan, "NaN in unused cache slots between sequences changes nothing",                               \
      "padding read as data, out-of-bounds reads")                                                              \
    G(parity, "O and LSE match the fp64 oracle under the error model", "anything that changes the numbers")

namespace attncheck::gates {

#define ATTNCHECK_DECLARE_GATE(name, ...) GateVerdict name(GateContext&);
ATTNCHECK_GATES(ATTNCHECK_DECLARE_GATE)
#undef ATTNCHECK_DECLARE_GATE

} // namespace attncheck::gates
