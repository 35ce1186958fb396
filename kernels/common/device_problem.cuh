// An AttentionProblem on the device: Q, K, V in the storage type T (float,
// __half or __nv_bfloat16), per-sequence offsets and lengths, O (in T) and
// LSE (fp32) poisoned with NaN, every buffer guarded. Also the device view
// of a probe request and its result slots.
//
// download() checks every guard band and converts O to float for the
// Observation; any CUDA error or guard violation throws.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "engine/case/dtype_bulk.hpp"
#include "engine/case/problem.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "engine/targets/observation.hpp"
#include "kernels/common/attention_common.hpp"

namespace attncheck {

// Host conversions of whole tensors between float and T
// (engine/case/dtype_bulk.hpp: the scalar conversions' bits, vectorized).
inline void store_floats(const float* in, float* out, std::size_t n) { std::copy_n(in, n, out); }
inline void store_floats(const float* in, __half* out, std::size_t n) {
    floats_to_f16_bits(in, reinterpret_cast<std::uint16_t*>(out), n);
}
inline void store_floats(const float* in, __nv_bfloat16* out, std::size_t n) {
    floats_to_bf16_bits(in, reinterpret_cast<std::uint16_t*>(out), n);
}
inline void load_floats(const float* in, float* out, std::size_t n) { std::copy_n(in, n, out); }
inline void load_floats(const __half* in, float* out, std::size_t n) {
    f16_bits_to_floats(reinterpret_cast<const std::uint16_t*>(in), out, n);
}
inline void load_floats(const __nv_bfloat16* in, float* out, std::size_t n) {
    bf16_bits_to_floats(reinterpret_cast<const std::uint16_t*>(in), out, n);
}

// Passed by value to kernels; active == 0 costs one predictable branch per row.
struct DeviceProbeView {
    int active = 0;
    int seq = 0, head = 0, token = 0;
    float* raw = nullptr;     // [kv_len]
    float* scaled = nullptr;  // [kv_len]
    float* masked = nullptr;  // [kv_len]
    float* exps = nullptr;    // [kv_len]
    float* p = nullptr;       // [kv_len]
    float* o = nullptr;       // [head_dim]
    float* scalars = nullptr; // [0] row_max, [1] max_exp, [2] row_sum
    float* tile_max = nullptr;
    float* tile_sum = nullptr;
    int max_tiles = 0;
    float* split_max = nullptr;
    float* split_sum = nullptr;
    int max_splits = 0;
};

// Owns the probe's device slots, all in one DeviceArena: one upload sets
// them, one copy brings them back (a probe run used to cost some fifty API
// calls, each taking the context's lock every worker thread shares). Before
// the run: raw/scaled NaN (a stage a kernel claims to record but does not
// is visible), masked -inf, exps and p 0, the rest NaN.
class DeviceProbe {
public:
    DeviceProbe(const AttentionProblem& p, const ProbeRequest& req, int max_tiles, int max_splits);
    DeviceProbeView view();
    ProbeTrace download(int used_tiles, int used_splits) const;

    enum Slot { raw, scaled, masked, exps, p, o, scalars, tile_max, tile_sum, split_max, split_sum, count_ };

private:
    ProbeRequest req_;
    int max_tiles_, max_splits_;
    DeviceArena arena_;
    std::size_t region_[count_] = {}, size_[count_] = {};
    DeviceBuffer<float> slot_[count_];
};

// Uniform values in [-1, 1) rounded to T, made on the device from a hash of
// (seed, index): a benchmark's inputs (a problem without values, under a
// KernelClock), made where they are used.
template <class T>
void fill_on_device(DeviceBuffer<T>& b, unsigned long long seed);

// All of it lives in one DeviceArena: one allocation and one upload per run.
template <class T>
class DeviceProblem {
public:
    explicit DeviceProblem(const AttentionProblem& p);

private:
    DeviceArena arena_;        // owns the memory of every buffer below
    std::size_t o_region_ = 0; // O and LSE regions are adjacent: one copy back

public:
    kernels::AttnShape shape;
    DeviceBuffer<T> q, k, v, o;
    DeviceBuffer<float> lse;
    DeviceBuffer<int> q_start, kv_start, q_lens, kv_lens; // per sequence
    int max_q_len = 0, max_kv_len = 0;
    // Re-poison outputs (for reruns on the same inputs).
    void poison_outputs();
    // Waits for the target's kernels, checks the guard bands of every buffer
    // here and of the target's own `scratch` buffers (one launch, one copy
    // back), converts O to float.
    Observation download(const std::vector<GuardRegion>& scratch = {});
};

extern template class DeviceProblem<float>;
extern template class DeviceProblem<__half>;
extern template class DeviceProblem<__nv_bfloat16>;

// Calls f(DeviceProblem<T>&) with T matching the problem's dtype.
template <class F>
auto with_device_problem(const AttentionProblem& p, F&& f) {
    switch (p.dtype) {
        case DType::f16: {
            DeviceProblem<__half> dp(p);
            return f(dp);
        }
        case DType::bf16: {
            DeviceProblem<__nv_bfloat16> dp(p);
            return f(dp);
        }
        default: {
            DeviceProblem<float> dp(p);
            return f(dp);
        }
    }
}

} // namespace attncheck
