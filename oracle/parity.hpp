// Oracle parity: compare a target's O and LSE with the reference, element by
// element, under the bound of error_model.hpp for the target's profile.
//
// Rows whose inputs hold NaN/inf are skipped (other gates judge them); fully
// masked rows must give exactly O = 0 and LSE = -inf; rows where the bound is
// meaningless are counted and reported, never silently passed.
#pragma once

#include <string>

#include "engine/targets/observation.hpp"
#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

struct QuantityReport {
    double max_err = 0;     // largest |target - oracle|
    double worst_ratio = 0; // largest |target - oracle| / bound
    long long worst = -1;   // flat index of the worst element
    double worst_err = 0, worst_bound = 0, worst_target = 0, worst_oracle = 0;
    long long violations = 0;
    long long checked = 0;
    void add(long long idx, double target, double oracle, double bound);
};

struct ParityReport {
    QuantityReport o, lse;
    long long rows = 0, masked_rows = 0, masked_violations = 0;
    long long nonfinite_input_rows = 0;
    long long out_of_range_rows = 0; // bound not meaningful
    double max_rho_p = 0;
    // Passed: every checked element inside its bound, masked rows exact.
    bool pass() const { return o.violations == 0 && lse.violations == 0 && masked_violations == 0; }
    // Some rows could not be judged: the verdict must say so.
    bool fully_judged() const { return out_of_range_rows == 0 && nonfinite_input_rows == 0; }
    std::string summary() const;
};

// The bounds from bound_problem (host) ...
ParityReport check_parity(const AttentionProblem& pb, const ReferenceOutput& ref, const Observation& obs,
                          const PrecisionProfile& prof);
// ... or given (the GPU oracle computes them beside the reference).
ParityReport check_parity(const AttentionProblem& pb, const ReferenceOutput& ref, const ProblemBounds& bounds,
                          const Observation& obs);

} // namespace attncheck
