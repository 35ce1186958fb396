// Agreement of two evaluations of the fp64 oracle and its bounds (the GPU
// oracle against the host's): the campaign samples it, `attncheck
// selfcheck` and tests/test_oracle_gpu.cpp run it on many cases.
//
// Tolerances. O and LSE: 1e-12 relative. Both sides compute the same exact
// quantities in fp64 and differ only in summation order and exp/log's last
// ulp, ~1e-16 relative to the row's scale; O is measured against
// max(|O|, W) with W = max_c sum_j p_j |v_jc|, because cancellation can make
// O_c far smaller than the terms it is rounded against. Bounds: 1e-6
// relative, because they are formed as (1 + x) - 1 with x ~ 1e-7 for fp32
// accumulation, which turns a 1e-16 difference of the factors into ~1e-9
// of the result; a bound 1e-6 off moves no verdict that is not already
// within 1e-6 of its limit. Flags (masked, finite, meaningful) must be equal;
// rows with non-finite inputs have no reference worth comparing, and the
// bounds of rows outside the meaningful range judge nothing (they may be
// inf or NaN), so only their reference is compared.
#pragma once

#include <string>

#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

inline constexpr double kOracleAgreement = 1e-12;
inline constexpr double kBoundAgreement = 1e-6;

// Empty when a and b agree; otherwise the first disagreement, with the row,
// the quantity and both values.
std::string compare_oracles(const AttentionProblem& p, const ReferenceOutput& ra, const ProblemBounds& ba,
                            const ReferenceOutput& rb, const ProblemBounds& bb);

// The same on up to max_rows rows spread over the problem, the host side
// computed for those rows only (reference_row, bound_row): what a campaign
// affords on every sampled evaluation.
std::string compare_with_host_rows(const AttentionProblem& p, const PrecisionProfile& f, const ReferenceOutput& r,
                                   const ProblemBounds& b, int max_rows);

} // namespace attncheck
