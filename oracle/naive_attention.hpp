// The naive attention in a target's own precision: the textbook algorithm in
// fp32 arithmetic, rounding to the storage format exactly where a precision
// profile says a target stores (S, P, O). It is the "same-dtype computation"
// of FlashAttention's test rule (error(target) <= k * error(naive) + floor),
// and, with a plain or an fp16-storage profile, the correct computations the
// error model is validated on.
//
// `defect` turns it into a known-wrong computation; the error model's own
// tests use these to show the bound is tight enough to catch real bugs.
#pragma once

#include "engine/case/problem.hpp"
#include "engine/targets/observation.hpp"
#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

enum class NaiveDefect {
    none,
    scale_off_1pct,           // scale * 1.01
    drop_key_from_normalizer, // the first visible key is left out of the row sum
};

Observation naive_attention(const AttentionProblem& pb, const PrecisionProfile& prof,
                            NaiveDefect defect = NaiveDefect::none);

// FlashAttention's rule: max|target - oracle| <= k * max|naive - oracle| +
// floor, where floor = 2 * uO * max|O| is the rounding of the output itself.
struct RelativeCheck {
    double target_err = 0, naive_err = 0, floor = 0, k = 2;
    bool judged = true; // false when the naive computation is not finite
    bool pass() const { return !judged || target_err <= k * naive_err + floor; }
};
RelativeCheck relative_to_naive(const AttentionProblem& pb, const ReferenceOutput& ref, const Observation& target,
                                const Observation& naive, DType output, double k = 2.0);

} // namespace attncheck
