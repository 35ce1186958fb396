// RapidCheck generators of valid Cases for one target's capabilities.
//
// Axes (issue 4 / ../shared/bug-classes.md): head counts (MHA, MQA, GQA with
// groups 2-8 and the ratios of real models: 14/2, 28/4, 12/2, 3/1); head
// dims (typical and odd, as the target supports); query and cache lengths
// (0, 1, tile edges +-1, long caches for decode); q_len < kv_len and
// q_len > kv_len; ragged batches with empty sequences; dtypes; split counts;
// causal masks and sliding windows; data from 1e-3 magnitudes to logits of
// about 11, 88.7 and 65504, outlier channels, sink tokens, Q/K bias vectors,
// ties (constant K rows), sparse small integers.
//
// Shrinking: every choice is drawn so that RapidCheck shrinks it toward the
// simplest value -- the first head pair (1/1), the smallest head dim, batch 1,
// length 0, no mask, one split, sparse integer data, logits of order 1, no
// outliers -- and each shrunk candidate is rebuilt through the same code, so
// it is valid by construction (magnitudes are refitted to the dtype, work is
// capped).
#pragma once

#include <ostream>

#include <rapidcheck.h>

#include "engine/case/case.hpp"
#include "properties/campaign/target_capabilities.hpp"

namespace attncheck {

struct GenLimits {
    int max_batch = 3;
    int max_len = 130;           // prefill lengths (tile edges up to 129)
    int max_decode_len = 2100;   // decode caches
    long long max_work = 300000; // sum over sequences of q_len * kv_len * n_q_heads * head_dim
};

// Where the choices come from: RapidCheck (gen_case; draws that shrink) or
// a libFuzzer byte stream (fuzz/fuzz_attention_gates.cpp). range() returns
// a value in [lo, hi); the first alternative of every choice is the simplest.
class Chooser {
public:
    virtual ~Chooser() = default;
    virtual long long range(long long lo, long long hi) = 0;
};

// One valid Case from a sequence of choices.
Case build_case(const Capabilities& caps, const GenLimits& lim, Chooser& ch);

rc::Gen<Case> gen_case(const Capabilities& caps, const GenLimits& lim = {});

// How RapidCheck prints a Case in a counterexample: its JSON.
void showValue(const Case& c, std::ostream& os);

// A one-line size summary of a case ("batch 1, heads 4/2, d 2, q [1], kv [3], fp16, causal").
std::string case_shape_summary(const Case& c);

} // namespace attncheck
