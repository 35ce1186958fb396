// The tolerance model: how far a correct target may be from the oracle, per
// element, given the target's precision profile and the case's data.
//
// The derivation is in docs/error-model.md; the short form, for one row with
// n visible keys, head_dim d, accumulation unit roundoff uA, storage unit
// roundoff uT, and gamma_k = k*uA/(1-k*uA) (Higham):
//
//   a_j   = |scale| * sum_c |q_c||k_jc|                    (conditioning of s_j)
//   e_j   = gamma_{d+2} a_j  [+ uT (|s_j| + ...) if S is stored in T]
//   Delta = max_j e_j + 2 uA max_j (|s_j - m| + 2 max_j e_j)   (logit error,
//           including the rounding of the exp argument s_j - m)
//   rhoP  = e^{2 Delta} (1 + c_exp uA)^2 (1 + gamma_{n+S}) (1 + uA) (1 + t r) - 1
//           [then (1 + rhoP)(1 + uT) - 1 if P is stored in T]
//           (relative error of each probability: softmax conditioning,
//           exp's ulps, the row sum, the division, t online rescales/splits)
//   |dP_j| <= rhoP p_j
//   |dO_c| <= ((1 + rhoP)(1 + gamma_{n+S})(1 + uA) - 1) W_c + uO (|O_c| + that),
//           W_c = sum_j p_j |v_jc|
//   |dLSE| <= Delta + rhoL/(1 - rhoL) + 4 uA (|m| + |log l| + 1),
//           rhoL = (1 + c_exp uA)(1 + gamma_{n+S})(1 + t r) - 1
//
// When rhoP >= 1/2, or a stored score can overflow T, the bound says nothing
// useful: the case is "outside the profile's meaningful range" and the
// verdict says so instead of passing or failing it.
#pragma once

#include <string>
#include <vector>

#include "engine/case/dtype.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/precision_profile.hpp"
#include "oracle/error_model_terms.hpp"

namespace attncheck {

// Per-row quantities the bound is built from (computed in fp64 from the
// exact inputs).
struct RowBound {
    bool masked = false;      // no visible key
    bool meaningful = true;   // false: bound too loose to say anything
    bool finite_input = true; // false: NaN/inf among the row's inputs
    double delta = 0;         // logit error bound (absolute)
    double rho_p = 0;         // relative bound per probability
    double lse = 0;           // bound on |LSE error|
    double w_max = 0;         // max_c sum_j p_j |v_jc|: the scale of O's rounding
    double logit_reach = 0;   // max over every key, masked or not, of |scale| sum_c |q_c k_jc|
    std::vector<double> o;    // per channel bound on |O error|
    std::vector<double> s;    // per key bound on |scaled score error| (visible keys)
    std::vector<double> p;    // per key bound on |P error|
};

// The profile's and problem's constants of the formulas (error_model_terms.hpp).
BoundConstants bound_constants(const AttentionProblem& pb, const PrecisionProfile& prof);

// Bound for one row.
RowBound bound_row(const AttentionProblem& pb, int seq, int head, int tok, const PrecisionProfile& prof);

// A RowBound without its per-key vectors: what parity and agreement checks
// read for every row.
struct RowTolerance {
    bool masked = false, meaningful = true, finite_input = true;
    double delta = 0, rho_p = 0, lse = 0, w_max = 0, logit_reach = 0;
};
RowTolerance tolerance_of(const RowBound& rb);

// The bounds of every row of a problem under one profile: rows in LSE order
// ([total_q][n_q_heads]), O bounds in Q's layout. Computed by bound_row on
// the host (bound_problem) or by the GPU oracle (oracle/gpu/oracle_gpu.hpp).
struct ProblemBounds {
    std::vector<RowTolerance> rows;
    std::vector<double> o;
};

ProblemBounds bound_problem(const AttentionProblem& pb, const PrecisionProfile& prof);

} // namespace attncheck
