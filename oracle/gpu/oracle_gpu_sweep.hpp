// The GPU oracle against the host's fp64 oracle and cpp_bin_float_50 over
// many random cases: what `attncheck selfcheck` prints on a machine with a
// GPU and tests/test_oracle_gpu.cpp asserts.
#pragma once

#include <cstdint>
#include <string>

namespace attncheck {

struct GpuOracleSweep {
    long long cases = 0, rows = 0;            // cases evaluated (each under two profiles)
    long long disagreements = 0;              // with the host oracle (compare_oracles)
    std::string first_disagreement;           // its report, with the case
    long long mp_cases = 0;                   // well-conditioned cases compared with cpp_bin_float_50
    double max_rel_mp = 0;                    // GPU O and LSE vs cpp_bin_float_50 (max_rel's measure)
    double seconds_gpu = 0, seconds_host = 0; // wall time of the two oracles (with bounds)
};

// Wide cases (sample_wide_case: every dtype, GQA, masks, windows, extreme
// magnitudes, special values) against the host; on every `mp_every`-th, a
// well-conditioned case against cpp_bin_float_50 as well.
GpuOracleSweep sweep_gpu_oracle(std::uint64_t first_seed, long long n_cases, int mp_every = 10);

} // namespace attncheck
