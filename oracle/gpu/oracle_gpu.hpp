// The fp64 oracle on the GPU, with the error model's bound computed beside
// it: for a CUDA target, a case's reference and the bounds of every
// metamorphic run would otherwise cost the host an O(rows * keys * head_dim)
// fp64 pass each.
//
// Written independently of kernels/: it shares nothing with the targets it
// judges except the AttentionProblem (the materialized Case), and with the
// host oracle only the error model's formulas (oracle/error_model_terms.hpp).
// Checked against the host fp64 oracle and cpp_bin_float_50 in `attncheck
// selfcheck`, in tests/test_oracle_gpu.cpp, and on a sample of every CUDA
// campaign (properties/gates/oracle_service.cpp).
//
// Plain C++ header; the implementation is oracle_gpu.cu.
#pragma once

#include "engine/case/problem.hpp"
#include "engine/targets/precision_profile.hpp"
#include "oracle/error_model.hpp"
#include "oracle/reference_attention.hpp"

namespace attncheck {

struct OracleRun {
    ReferenceOutput ref;  // fp64 O and LSE
    ProblemBounds bounds; // under the profile given
};

// The longest KV sequence the GPU oracle takes (a row's fp64 scores live in
// shared memory: 227 KiB on sm_90); longer problems go to the host oracle.
inline constexpr int kGpuOracleMaxKeys = 16384;

// On the calling thread's current device and default stream. Throws
// CudaError (CUDA failure) or std::invalid_argument (kv_len above the limit).
OracleRun gpu_oracle(const AttentionProblem& p, const PrecisionProfile& prof);

} // namespace attncheck
