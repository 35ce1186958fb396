#include "kernels/common/device_problem.cuh"

#include <algorithm>
#include <cmath>

namespace attncheck {

namespace {

template <class T>
std::vector<T> convert(const std::vector<float>& x) {
    std::vector<T> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = to_storage<T>(x[i]);
    return out;
}

std::vector<int> to_int(const std::vector<long long>& x) { return {x.begin(), x.end()}; }

void fill(DeviceBuffer<float>& b, float value) { b.upload(std::vector<float>(b.size(), value)); }

} // namespace

template <class T>
DeviceProblem<T>::DeviceProblem(const AttentionProblem& p)
    : q(p.q.size(), "Q"),
      k(p.k.size(), "K"),
      v(p.v.size(), "V"),
      o(p.q.size(), "O"),
      lse(static_cast<size_t>(p.total_q()) * p.n_q_heads, "LSE"),
      q_start(p.q_start.size(), "q_start"),
      kv_start(p.kv_start.size(), "kv_start"),
      q_lens(p.q_lens.size(), "q_lens"),
      kv_lens(p.kv_lens.size(), "kv_lens") {
    shape = kernels::attn_shape_of(p);
    q.upload(convert<T>(p.q));
    k.upload(convert<T>(p.k));
    v.upload(convert<T>(p.v));
    q_start.upload(to_int(p.q_start));
    kv_start.upload(to_int(p.kv_start));
    q_lens.upload(p.q_lens);
    kv_lens.upload(p.kv_lens);
    max_q_len = p.q_lens.empty() ? 0 : *std::max_element(p.q_lens.begin(), p.q_lens.end());
    max_kv_len = p.kv_lens.empty() ? 0 : *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
    poison_outputs();
}

template <class T>
void DeviceProblem<T>::poison_outputs() {
    o.poison();
    lse.poison();
}

template <class T>
Observation DeviceProblem<T>::download(std::initializer_list<GuardRegion> scratch) {
    // O and LSE are copied to pinned staging behind the target's kernels; the
    // guard check's one synchronization completes them too.
    const std::size_t o_bytes = o.bytes(), lse_bytes = lse.bytes();
    auto* stage = static_cast<unsigned char*>(thread_pinned(o_bytes + lse_bytes + 16));
    T* oh = reinterpret_cast<T*>(stage);
    float* lh = reinterpret_cast<float*>(stage + (o_bytes + 15) / 16 * 16);
    o.download_async(oh);
    lse.download_async(lh);
    std::vector<GuardRegion> regions{q.guards(),        k.guards(),      v.guards(),
                                     o.guards(),        lse.guards(),    q_start.guards(),
                                     kv_start.guards(), q_lens.guards(), kv_lens.guards()};
    regions.insert(regions.end(), scratch.begin(), scratch.end());
    check_guard_bands(regions);
    Observation obs;
    obs.o.resize(o.size());
    for (size_t i = 0; i < o.size(); ++i) obs.o[i] = from_storage<T>(oh[i]);
    obs.lse.assign(lh, lh + lse.size());
    return obs;
}

template class DeviceProblem<float>;
template class DeviceProblem<__half>;
template class DeviceProblem<__nv_bfloat16>;

DeviceProbe::DeviceProbe(const AttentionProblem& p, const ProbeRequest& req, int max_tiles, int max_splits)
    : req_(req),
      n_(p.kv_lens.at(req.seq)),
      d_(p.head_dim),
      max_tiles_(max_tiles),
      max_splits_(max_splits),
      raw_(n_, "probe.raw"),
      scaled_(n_, "probe.scaled"),
      masked_(n_, "probe.masked"),
      exps_(n_, "probe.exps"),
      p_(n_, "probe.p"),
      o_(d_, "probe.o"),
      scalars_(3, "probe.scalars"),
      tmax_(std::max(max_tiles, 0), "probe.tile_max"),
      tsum_(std::max(max_tiles, 0), "probe.tile_sum"),
      smax_(std::max(max_splits, 0), "probe.split_max"),
      ssum_(std::max(max_splits, 0), "probe.split_sum") {
    raw_.poison();
    scaled_.poison();
    fill(masked_, -INFINITY);
    fill(exps_, 0.0f);
    fill(p_, 0.0f);
    o_.poison();
    scalars_.poison();
    tmax_.poison();
    tsum_.poison();
    smax_.poison();
    ssum_.poison();
}

DeviceProbeView DeviceProbe::view() {
    DeviceProbeView v;
    v.active = 1;
    v.seq = req_.seq;
    v.head = req_.head;
    v.token = req_.token;
    v.raw = raw_.get();
    v.scaled = scaled_.get();
    v.masked = masked_.get();
    v.exps = exps_.get();
    v.p = p_.get();
    v.o = o_.get();
    v.scalars = scalars_.get();
    v.tile_max = tmax_.get();
    v.tile_sum = tsum_.get();
    v.max_tiles = max_tiles_;
    v.split_max = smax_.get();
    v.split_sum = ssum_.get();
    v.max_splits = max_splits_;
    return v;
}

ProbeTrace DeviceProbe::download(int used_tiles, int used_splits) const {
    check_guard_bands({raw_.guards(), scaled_.guards(), masked_.guards(), exps_.guards(), p_.guards(), o_.guards(),
                       scalars_.guards(), tmax_.guards(), tsum_.guards(), smax_.guards(), ssum_.guards()});
    ProbeTrace t;
    t.where = req_;
    t.raw = raw_.download();
    t.scaled = scaled_.download();
    t.masked = masked_.download();
    t.exps = exps_.download();
    t.p = p_.download();
    t.o = o_.download();
    const auto s = scalars_.download();
    t.row_max = s[0];
    t.max_exp = s[1];
    t.row_sum = s[2];
    auto head = [](std::vector<float> x, int n) {
        x.resize(static_cast<size_t>(std::clamp(n, 0, static_cast<int>(x.size()))));
        return x;
    };
    t.tile_max = head(tmax_.download(), used_tiles);
    t.tile_sum = head(tsum_.download(), used_tiles);
    t.split_max = head(smax_.download(), used_splits);
    t.split_sum = head(ssum_.download(), used_splits);
    return t;
}

} // namespace attncheck
