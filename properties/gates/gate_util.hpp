// Small pieces several gates share: locating rows, parity verdicts against a
// reference, bitwise row comparison, and building transformed problems whose
// values stay exactly representable in the case's dtype.
#pragma once

#include <functional>
#include <string>

#include "oracle/parity.hpp"
#include "properties/gates/gate.hpp"

namespace attncheck {

// The (sequence, head, token) of a flat index into O (or of an LSE index
// when per_row is true).
ProbeRequest row_of_o_index(const AttentionProblem& p, long long flat);
ProbeRequest row_of_lse_index(const AttentionProblem& p, long long flat);
std::string row_name(const ProbeRequest& r);

// Oracle parity of `obs` (the target on `p`) against `ref` (the oracle of a
// problem that is mathematically equal to `p`). `what` names the run in the
// summary ("rotated Q/K channels", ...).
GateVerdict parity_verdict(const std::string& what, const AttentionProblem& p, const ReferenceOutput& ref,
                           const ProblemBounds& bounds, const Observation& obs);

// The same values: equal floats (+0 and -0 are equal) or NaN on both sides.
// For relations on what a row computes (the future is invisible) rather than
// on how (bitwise determinism): a masked key whose p = 0 multiplies a
// negative V gives -0, and whether O's sum of zeros ends as +0 or -0 is no
// leak of that key.
bool rows_same_values(const AttentionProblem& pa, const Observation& a, const ProbeRequest& ra,
                      const AttentionProblem& pb, const Observation& b, const ProbeRequest& rb);
// Bitwise equality of O and LSE of one row in two observations of possibly
// different problems (rows addressed in each).
bool rows_bitwise_equal(const AttentionProblem& pa, const Observation& a, const ProbeRequest& ra,
                        const AttentionProblem& pb, const Observation& b, const ProbeRequest& rb);

// The first element where two observations of the same problem differ in
// bits (O, then LSE): its row, and "O at <row>, channel c: x then y" (or
// "LSE at <row>: x then y"); nothing when they are bitwise equal.
struct BitDifference {
    ProbeRequest row;
    std::string where;
};
std::optional<BitDifference> first_bit_difference(const AttentionProblem& p, const Observation& a,
                                                  const Observation& b);

// A problem holding only the given sequences of p, in that order.
AttentionProblem select_sequences(const AttentionProblem& p, const std::vector<int>& seqs);

// The probe row a gate looks at when it has no better choice: the last query
// of the sequence with the most visible keys, head 0 (or `head`), among rows
// whose inputs are all finite.
std::optional<ProbeRequest> default_probe_row(const AttentionProblem& p, int head = 0);

// Number of keys query `tok` of sequence `seq` sees.
int visible_keys(const AttentionProblem& p, int seq, int tok);

} // namespace attncheck

namespace attncheck {

// Bound on how far a row's O may leave the convex hull of the V values it
// attends to (or, for constant V, how far it may be from that V), whatever
// the logits: only the relative roundings of the two sums, the division and
// the online rescales/split merges, and the output rounding, enter:
//   (2 gamma_{n + 2 tiles + 2 splits + 10}(uA) + 2 uO) * max|v|.
// It holds where the conditioning-aware bound is too loose to mean anything.
double normalization_tolerance(const AttentionProblem& p, const PrecisionProfile& prof, int n_visible, double vmax);

} // namespace attncheck

namespace attncheck {

// Metamorphic agreement of two runs of the same target: every row of problem
// b that `to_a` maps to a row of problem a must agree with it within the sum
// of the two rows' error bounds (each run may be off from the common exact
// answer by its own bound). Fully masked rows must both be exactly O = 0,
// LSE = -inf. Comparing the target with itself, not with the oracle, keeps a
// metamorphic gate specific: a bug that hits both runs alike (a wrong scale)
// passes here and is named by its own gate. lse_shift: b's LSE plus this
// equals a's (a transform that shifts every logit).
using RowMap = std::function<std::optional<ProbeRequest>(const ProbeRequest& row_in_b)>;
// ba and bb: each problem's bounds under the target's profile for it
// (GateContext::bounds / bounds_of).
GateVerdict agreement_verdict(const std::string& what, const AttentionProblem& pa, const Observation& oa,
                              const ProblemBounds& ba, const AttentionProblem& pb, const Observation& ob,
                              const ProblemBounds& bb, const RowMap& to_a, double lse_shift = 0.0);
// The identity map, for two problems with the same rows.
RowMap same_rows();

} // namespace attncheck

namespace attncheck {

// Two problems whose logits differ by exactly `shift` in every row: channel
// 0 of Q set to alpha everywhere, channel 0 of K to 0 (p0) or to
// sign * beta (p1), alpha * beta * scale = |shift| a power of two. |shift|
// is as large as the error model allows: the fp32 dot product of p1 has an
// absolute error of about (d + 2) uA |shift|, so |shift| =
// 2^floor(log2(2e6 / (d + 2))) keeps that near 0.1 (16384 for head dim 64).
// Empty when alpha or beta is not representable in the dtype.
struct ShiftedPair {
    AttentionProblem p0, p1;
    double shift = 0; // logits of p1 minus logits of p0
};
std::optional<ShiftedPair> shifted_pair(const AttentionProblem& p, int sign);

// True when some query row of p sees at least one key.
bool any_visible_row(const AttentionProblem& p);

} // namespace attncheck
