// The production decode_gqa kernel (no mutant, no probe) on caller-owned
// device buffers, launched on a stream without allocating, copying or
// synchronizing, so that a CUDA graph can capture it: the device-resident
// decoder (model/graph_decoder.cu) calls it. The layout is the packed one of
// AttentionProblem (engine/case/problem.hpp): Q and O [rows][n_q][d] at
// q_start, K and V [keys][n_kv][d] at kv_start, per-sequence q_lens (0 or 1)
// and kv_lens, all read on the device at run time. The numerics are the
// kernel's, bit for bit, whichever entry launched it.
#pragma once

#include <cuda_runtime.h>

#include <vector>

#include "engine/case/dtype.hpp"
#include "kernels/common/attention_common.hpp"

namespace attncheck::kernels {

struct DecodeGqaOnDevice {
    AttnShape shape{};       // batch = sequences
    const void* q = nullptr; // T
    const void* k = nullptr; // T
    const void* v = nullptr; // T
    void* o = nullptr;       // T
    float* lse = nullptr;    // [rows][n_q]
    const int *q_start = nullptr, *kv_start = nullptr, *q_lens = nullptr, *kv_lens = nullptr;
    const int* group_heads = nullptr; // decode_gqa_group_heads(shape), on the device
};

// The q heads of each kv head's group, in the order the kernel's warps take them.
std::vector<int> decode_gqa_group_heads(const AttnShape& s);
// Throws UnsupportedCase for a shape the kernel cannot run; CudaError on a launch error.
void decode_gqa_on_stream(DType dtype, const DecodeGqaOnDevice& a, cudaStream_t stream);

} // namespace attncheck::kernels
