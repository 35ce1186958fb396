// A Case's data generated on the GPU, bit-identical to materialize()
// (engine/case/problem.cpp), for callers that want the inputs where the
// kernels read them. Not faster than materialize() for a few long sequences
// (see materialize_device.cu). Plain C++: callable from code compiled without
// nvcc; the definitions are in materialize_device.cu (CUDA builds only).
#pragma once

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"

namespace attncheck {

// Q, K, V of materialize(c) generated on the current CUDA device, on the
// calling thread's default stream (the project is compiled with
// --default-stream per-thread / CUDA_API_PER_THREAD_DEFAULT_STREAM).
// Returns an AttentionProblem whose q/k/v are downloaded to the host (for
// tests and for host-side gates), bit-identical to materialize(c). Validates
// first, as materialize() does (CaseError); CUDA failures throw CudaError.
AttentionProblem materialize_on_device(const Case& c);

// The same values written into caller-allocated device arrays of the sizes
// materialize() uses: sum(q_lens) * n_q_heads * head_dim floats for d_q,
// sum(kv_lens) * n_kv_heads * head_dim for d_k and d_v (a pointer may be null
// when its size is 0). Uploads only small per-case tables and enqueues the
// work on cudaStreamPerThread; it returns without waiting for the kernels,
// so synchronize that stream (or use it) before reading the arrays. The
// arrays are filled with NaN first, so an element the kernels missed shows.
void materialize_into_device(const Case& c, float* d_q, float* d_k, float* d_v);

} // namespace attncheck
