// Seeded samplers of valid Cases, for sweeps that want thousands of varied
// cases from one integer (the error-model sweep, `attncheck selfcheck`).
// They are plain functions of a seed, so that case i of a sweep is
// reproducible on its own; the wide one draws from the same table as the
// RapidCheck generators (engine/case/case_distribution.hpp).
#pragma once

#include <cstdint>

#include "engine/case/case.hpp"

namespace attncheck {

struct SamplerLimits {
    long long max_work = 400000; // sum over sequences of max(q_len,1) * max(kv_len,1) * n_q_heads * head_dim
    int max_q_heads = 16;
    int max_kv_len = 4096; // KV caches of decode steps
    int max_len = 600;     // prefill lengths
};

// Wide: the whole case distribution (every dtype, GQA ratios, odd head dims,
// empty and long rows, q_len greater and smaller than kv_len, windows, data
// from 1e-3 magnitudes up to the edge of each dtype's range, outlier
// channels, sinks, biases, special values) within the limits.
Case sample_wide_case(std::uint64_t seed, const SamplerLimits& lim = {});

// Halves the recipe's magnitudes (Q and K with their biases, V) until no
// generated value can overflow the case's dtype.
void fit_recipe_to_dtype(Case& c);

// Well-conditioned fp32 cases: normal data, logits of order 1, 2..256 keys.
// On these a wrong computation must be visible.
Case sample_well_conditioned_case(std::uint64_t seed);

} // namespace attncheck
