// Seeded samplers of valid Cases, for sweeps that want thousands of varied
// cases from one integer (the error-model sweep, `attncheck selfcheck`).
// RapidCheck generators (with shrinking) are separate; these are plain
// functions of a seed so that case i of a sweep is reproducible on its own.
#pragma once

#include <cstdint>

#include "engine/case/case.hpp"

namespace attncheck {

struct SamplerLimits {
    long long max_work = 400000; // rows * visible keys * head_dim, per case
    int max_q_heads = 16;
    int max_kv_len = 4096;
};

// Wide: all dtypes, GQA ratios, odd head dims, empty and long rows, q_len
// greater and smaller than kv_len, windows, and data from 1e-3 magnitudes up
// to the edge of each dtype's range (outlier channels, sinks, biases).
Case sample_wide_case(std::uint64_t seed, const SamplerLimits& lim = {});

// Halves the recipe's magnitudes (Q and K with their biases, V) until no
// generated value can overflow the case's dtype.
void fit_recipe_to_dtype(Case& c);

// Well-conditioned fp32 cases: normal data, logits of order 1, 2..256 keys.
// On these a wrong computation must be visible.
Case sample_well_conditioned_case(std::uint64_t seed);

} // namespace attncheck
