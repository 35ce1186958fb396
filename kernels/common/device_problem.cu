#include "kernels/common/device_problem.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/cuda/kernel_clock.hpp"
#include "engine/timing/phase_timer.hpp"

namespace attncheck {

namespace {

// Uniform values in [-1, 1) from a hash of (seed, stream, index), rounded to
// T: bench inputs made where they are used (see KernelClock).
template <class T>
__global__ void fill_uniform(T* x, long long n, unsigned long long seed) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        unsigned long long h = seed ^ (static_cast<unsigned long long>(i) * 0x9E3779B97F4A7C15ull);
        h ^= h >> 31;
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        const float u = static_cast<float>(h >> 40) * 0x1p-24f; // [0, 1)
        x[i] = static_cast<T>(2.0f * u - 1.0f);
    }
}

} // namespace

template <class T>
void fill_on_device(DeviceBuffer<T>& b, unsigned long long seed) {
    const long long n = static_cast<long long>(b.size());
    if (n == 0) return;
    fill_uniform<T><<<1024, 256, 0, cudaStreamPerThread>>>(b.get(), n, seed);
    CUDA_CHECK_LAUNCH();
}

template void fill_on_device(DeviceBuffer<float>&, unsigned long long);
template void fill_on_device(DeviceBuffer<__half>&, unsigned long long);
template void fill_on_device(DeviceBuffer<__nv_bfloat16>&, unsigned long long);

template <class T>
DeviceProblem<T>::DeviceProblem(const AttentionProblem& p) {
    ScopedPhase phase(Phase::transfer);
    shape = kernels::attn_shape_of(p);
    // A problem without values (problem_shape) is a benchmark's: filled on the device below.
    const KernelClock* clock = KernelClock::installed();
    const bool device_fill = p.q.empty() && p.k.empty() && p.v.empty() && clock;
    const size_t nq = p.q_elems(), nkv = p.kv_elems(), nb = p.q_lens.size();
    if (!device_fill && (p.q.size() != nq || p.k.size() != nkv || p.v.size() != nkv))
        throw std::logic_error(
            "DeviceProblem: Q, K or V does not match the problem's shape (values are only "
            "left out under a KernelClock)");
    const size_t nlse = static_cast<size_t>(p.total_q()) * p.n_q_heads;
    const size_t rq = arena_.reserve<T>(nq), rk = arena_.reserve<T>(nkv), rv = arena_.reserve<T>(nkv);
    o_region_ = arena_.reserve<T>(nq);
    const size_t rlse = arena_.reserve<float>(nlse);
    const size_t rqs = arena_.reserve<int>(nb), rks = arena_.reserve<int>(nb), rql = arena_.reserve<int>(nb),
                 rkl = arena_.reserve<int>(nb);
    arena_.begin_image();
    auto put_values = [&](size_t region, const std::vector<float>& x) {
        store_floats(x.data(), arena_.image_payload<T>(region), x.size());
    };
    if (!device_fill) {
        put_values(rq, p.q);
        put_values(rk, p.k);
        put_values(rv, p.v);
    }
    auto put_ints = [&](size_t region, const auto& x) {
        int* h = arena_.image_payload<int>(region);
        for (size_t i = 0; i < x.size(); ++i) h[i] = static_cast<int>(x[i]);
    };
    put_ints(rqs, p.q_start);
    put_ints(rks, p.kv_start);
    put_ints(rql, p.q_lens);
    put_ints(rkl, p.kv_lens);
    arena_.poison_image(o_region_, nq * sizeof(T));
    arena_.poison_image(rlse, nlse * sizeof(float));
    arena_.upload();
    q = arena_.view<T>(rq, nq, "Q");
    k = arena_.view<T>(rk, nkv, "K");
    v = arena_.view<T>(rv, nkv, "V");
    o = arena_.view<T>(o_region_, nq, "O");
    lse = arena_.view<float>(rlse, nlse, "LSE");
    q_start = arena_.view<int>(rqs, nb, "q_start");
    kv_start = arena_.view<int>(rks, nb, "kv_start");
    q_lens = arena_.view<int>(rql, nb, "q_lens");
    kv_lens = arena_.view<int>(rkl, nb, "kv_lens");
    if (device_fill) {
        const unsigned long long seed = clock->plan().fill_seed * 0xD1B54A32D192ED03ull;
        fill_on_device(q, seed ^ 1);
        fill_on_device(k, seed ^ 2);
        fill_on_device(v, seed ^ 3);
    }
    max_q_len = p.q_lens.empty() ? 0 : *std::max_element(p.q_lens.begin(), p.q_lens.end());
    max_kv_len = p.kv_lens.empty() ? 0 : *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
}

template <class T>
void DeviceProblem<T>::poison_outputs() {
    o.poison();
    lse.poison();
}

template <class T>
Observation DeviceProblem<T>::download(const std::vector<GuardRegion>& scratch) {
    // O through LSE (adjacent regions) are copied to pinned staging behind
    // the target's kernels in one copy; the guard check's one
    // synchronization completes it.
    const size_t lse_payload = o_region_ + guarded_region_bytes(o.bytes()) + kGuardBytes;
    const size_t span = lse_payload + lse.bytes() - (o_region_ + kGuardBytes);
    unsigned char* stage = PinnedStage::take(span);
    if (span) CUDA_CHECK(cudaMemcpyAsync(stage, o.get(), span, cudaMemcpyDeviceToHost, cudaStreamPerThread));
    const T* oh = reinterpret_cast<const T*>(stage);
    const float* lh = reinterpret_cast<const float*>(stage + (lse_payload - o_region_ - kGuardBytes));
    std::vector<GuardRegion> regions{q.guards(),        k.guards(),      v.guards(),
                                     o.guards(),        lse.guards(),    q_start.guards(),
                                     kv_start.guards(), q_lens.guards(), kv_lens.guards()};
    regions.insert(regions.end(), scratch.begin(), scratch.end());
    check_guard_bands(regions);
    ScopedPhase phase(Phase::transfer);
    Observation obs;
    obs.o.resize(o.size());
    load_floats(oh, obs.o.data(), o.size());
    obs.lse.assign(lh, lh + lse.size());
    return obs;
}

template class DeviceProblem<float>;
template class DeviceProblem<__half>;
template class DeviceProblem<__nv_bfloat16>;

DeviceProbe::DeviceProbe(const AttentionProblem& prob, const ProbeRequest& req, int max_tiles, int max_splits)
    : req_(req), max_tiles_(max_tiles), max_splits_(max_splits) {
    static constexpr const char* kNames[count_] = {
        "probe.raw",     "probe.scaled",   "probe.masked",   "probe.exps",      "probe.p",        "probe.o",
        "probe.scalars", "probe.tile_max", "probe.tile_sum", "probe.split_max", "probe.split_sum"};
    const std::size_t n = static_cast<std::size_t>(prob.kv_lens.at(req.seq)),
                      d = static_cast<std::size_t>(prob.head_dim);
    const std::size_t tiles = static_cast<std::size_t>(std::max(max_tiles, 0)),
                      splits = static_cast<std::size_t>(std::max(max_splits, 0));
    const std::size_t sizes[count_] = {n, n, n, n, n, d, 3, tiles, tiles, splits, splits};
    for (int s = 0; s < count_; ++s) {
        size_[s] = sizes[s];
        region_[s] = arena_.reserve<float>(sizes[s]);
    }
    arena_.begin_image();
    for (int s = 0; s < count_; ++s) {
        float* x = arena_.image_payload<float>(region_[s]);
        if (s == masked)
            std::fill_n(x, size_[s], -INFINITY);
        else if (s == exps || s == p)
            std::fill_n(x, size_[s], 0.0f);
        else
            arena_.poison_image(region_[s], size_[s] * sizeof(float));
    }
    arena_.upload();
    for (int s = 0; s < count_; ++s) slot_[s] = arena_.view<float>(region_[s], size_[s], kNames[s]);
}

DeviceProbeView DeviceProbe::view() {
    DeviceProbeView v;
    v.active = 1;
    v.seq = req_.seq;
    v.head = req_.head;
    v.token = req_.token;
    v.raw = slot_[raw].get();
    v.scaled = slot_[scaled].get();
    v.masked = slot_[masked].get();
    v.exps = slot_[exps].get();
    v.p = slot_[p].get();
    v.o = slot_[o].get();
    v.scalars = slot_[scalars].get();
    v.tile_max = slot_[tile_max].get();
    v.tile_sum = slot_[tile_sum].get();
    v.max_tiles = max_tiles_;
    v.split_max = slot_[split_max].get();
    v.split_sum = slot_[split_sum].get();
    v.max_splits = max_splits_;
    return v;
}

ProbeTrace DeviceProbe::download(int used_tiles, int used_splits) const {
    // The whole arena in one copy, completed by the guard check's wait.
    unsigned char* stage = PinnedStage::take(arena_.bytes());
    CUDA_CHECK(
        cudaMemcpyAsync(stage, arena_.device_bytes(), arena_.bytes(), cudaMemcpyDeviceToHost, cudaStreamPerThread));
    std::vector<GuardRegion> regions;
    for (const auto& b : slot_) regions.push_back(b.guards());
    check_guard_bands(regions);
    auto slot = [&](int s, std::size_t keep) {
        const float* x = reinterpret_cast<const float*>(stage + region_[s] + kGuardBytes);
        return std::vector<float>(x, x + std::min(keep, size_[s]));
    };
    auto head = [](int used) { return static_cast<std::size_t>(std::max(used, 0)); };
    ProbeTrace t;
    t.where = req_;
    t.raw = slot(raw, size_[raw]);
    t.scaled = slot(scaled, size_[scaled]);
    t.masked = slot(masked, size_[masked]);
    t.exps = slot(exps, size_[exps]);
    t.p = slot(p, size_[p]);
    t.o = slot(o, size_[o]);
    const auto sc = slot(scalars, 3);
    t.row_max = sc[0];
    t.max_exp = sc[1];
    t.row_sum = sc[2];
    t.tile_max = slot(tile_max, head(used_tiles));
    t.tile_sum = slot(tile_sum, head(used_tiles));
    t.split_max = slot(split_max, head(used_splits));
    t.split_sum = slot(split_sum, head(used_splits));
    return t;
}

} // namespace attncheck
