// The oracle's own checks, as functions that return their numbers: the test
// suite asserts on them, and `attncheck selfcheck` prints them. Until the
// engine exists this is what the quick-start property run exercises.
//
//  - closed forms: one key returns its V exactly; equal logits give the mean
//    of V; a known LSE; GQA equals MHA with K/V heads repeated; fully masked
//    rows give O = 0, LSE = -inf;
//  - agreement of the fp64 reference with cpp_bin_float_50, and with the
//    independently written tiled reference;
//  - the error model: correct computations (plain fp32, fp16/bf16 storage of
//    S, P and O) inside the bound; known-wrong computations outside it; the
//    FlashAttention-style relative check.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace attncheck {

struct AttentionProblem;
struct ReferenceOutput;

// Relative difference of two oracle outputs, O measured against the row's
// scale max|V| (a component of O near zero has no relative accuracy to speak
// of), LSE against itself.
double max_rel(const AttentionProblem& pb, const ReferenceOutput& a, const ReferenceOutput& b);

struct ClosedFormResult {
    std::string name;
    bool pass = false;
    std::string detail;
};
std::vector<ClosedFormResult> oracle_closed_forms();

struct AgreementSweep {
    long long cases = 0, rows = 0;
    double max_rel_mp = 0;    // fp64 reference vs cpp_bin_float_50 (O and LSE)
    double max_rel_tiled = 0; // fp64 reference vs tiled fp64 reference
    std::uint64_t worst_mp_seed = 0, worst_tiled_seed = 0;
};
// Well-conditioned cases (finite, meaningful logits), multiprecision on every
// `mp_every`-th case (it is ~100x slower).
AgreementSweep sweep_reference_agreement(std::uint64_t first_seed, long long n_cases, int mp_every = 4);

struct ProfileTally {
    std::string profile;
    long long cases = 0; // cases where at least one row was judged
    long long rows_judged = 0;
    long long rows_out_of_range = 0;
    long long false_alarms = 0; // cases with any violation (must be 0)
    double worst_ratio = 0;     // max error/bound seen
    double median_ratio = 0;    // of per-case worst O ratios
    std::uint64_t first_alarm_seed = 0;
    std::string first_alarm_detail;
};
struct ErrorModelSweep {
    long long cases = 0;
    std::vector<ProfileTally> correct; // must all have false_alarms == 0
    // FlashAttention-style check: a computation storing only O in the input
    // dtype vs the naive one that also stores S and P there (k = 2).
    long long relative_checked = 0, relative_failures = 0;
};
ErrorModelSweep sweep_error_model(std::uint64_t first_seed, long long n_cases,
                                  const std::function<void(long long)>& progress = {});

struct DetectionSweep {
    long long cases = 0;
    long long scale_caught = 0, scale_judged = 0;
    long long drop_caught = 0, drop_judged = 0;
    long long relative_scale_caught = 0; // FA-style check catches the 1% scale
    std::uint64_t first_missed_seed = 0;
    std::string first_missed_detail;
};
DetectionSweep sweep_defect_detection(std::uint64_t first_seed, long long n_cases);

} // namespace attncheck
