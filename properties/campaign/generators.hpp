// RapidCheck generators of valid Cases for one target's capabilities.
//
// The cases come from the one weighted table of engine/case/case_distribution.hpp
// (`attncheck list --distribution` prints it): head counts (MHA, MQA, GQA
// with the ratios of real models), head dims, lengths (0, 1, tile edges +-1,
// long decode caches), q_len < kv_len and q_len > kv_len, ragged batches
// with empty sequences, dtypes, split counts, causal masks and sliding
// windows, data from 1e-3 logits to far beyond each dtype's exp overflow,
// outlier channels, sink tokens, Q/K bias vectors, ties, sparse small
// integers, a non-finite query element. The target's capabilities narrow it
// (its dtypes and head dims; one query per sequence for a decode kernel).
//
// Shrinking: every choice is a weighted index that RapidCheck shrinks toward
// the table's first, simplest alternative -- one head, the smallest head
// dim, batch 1, length 0, no mask, one split, sparse integer data, logits of
// order 1, no outliers -- and each shrunk candidate is rebuilt through the
// same code, so it is valid by construction (magnitudes are refitted to the
// dtype, work is capped).
#pragma once

#include <ostream>

#include <rapidcheck.h>

#include "engine/case/case.hpp"
#include "engine/case/case_distribution.hpp"
#include "properties/campaign/target_capabilities.hpp"

namespace attncheck {

// max_batch, max_len (prefill lengths), max_decode_len (decode caches),
// max_work; the CUDA campaigns raise max_len and max_work.
using GenLimits = DrawLimits;

// One valid Case from a sequence of choices: RapidCheck's (gen_case; draws
// that shrink) or a libFuzzer byte stream's (fuzz/fuzz_attention_gates.cpp).
Case build_case(const Capabilities& caps, const GenLimits& lim, Chooser& ch);

rc::Gen<Case> gen_case(const Capabilities& caps, const GenLimits& lim = {});

// The draws of one build_case, each as its offset from the range's low end
// (so 0 is the table's first, simplest alternative).
using ChoiceRecord = std::vector<long long>;

// Wraps a chooser and records what it chose.
class RecordingChooser final : public Chooser {
public:
    explicit RecordingChooser(Chooser& inner) : inner_(inner) {}
    long long range(long long lo, long long hi) override;
    const ChoiceRecord& record() const { return record_; }

private:
    Chooser& inner_;
    ChoiceRecord record_;
};

// The case a record builds (draws past its end, or beyond a range, take the
// low end), with RapidCheck shrinking every draw toward 0: the seeded
// drawer's failures shrink like RapidCheck's own.
rc::Gen<Case> gen_replayed_case(const Capabilities& caps, const GenLimits& lim, ChoiceRecord record);

// How RapidCheck prints a Case in a counterexample: its JSON.
void showValue(const Case& c, std::ostream& os);

// A one-line size summary of a case ("batch 1, heads 4/2, d 2, q [1], kv [3], fp16, causal").
std::string case_shape_summary(const Case& c);

} // namespace attncheck
