// The example's "user kernel": naive fp32 attention, wrapped as an attncheck
// Target, with a twin that applies the softmax scale twice. Used by the test
// binary (check_my_kernel.cpp) and the plugin (my_kernel_plugin.cpp).
#pragma once

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include <attncheck/plugin.hpp>

namespace my_kernel {

using namespace attncheck;

// The user's kernel: plain loops, fp32 throughout. Bottom-right causal
// alignment and sliding windows as in docs/case-format.md; a query that sees
// no key gives O = 0 and LSE = -inf.
inline void my_attention(const AttentionProblem& p, float scale, std::vector<float>& o, std::vector<float>& lse) {
    const int d = p.head_dim;
    for (int b = 0; b < p.batch(); ++b)
        for (int t = 0; t < p.q_lens[b]; ++t)
            for (int h = 0; h < p.n_q_heads; ++h) {
                const int kvh = h / p.group();
                const long long pos = static_cast<long long>(p.kv_lens[b]) - p.q_lens[b] + t;
                auto visible = [&](int j) { return !p.causal || (j <= pos && !(p.window > 0 && j <= pos - p.window)); };
                const float* q = &p.q[p.q_index(b, t, h)];
                std::vector<float> s(static_cast<size_t>(p.kv_lens[b]), -INFINITY);
                float m = -INFINITY;
                for (int j = 0; j < p.kv_lens[b]; ++j) {
                    if (!visible(j)) continue;
                    const float* k = &p.k[p.kv_index(b, j, kvh)];
                    float acc = 0;
                    for (int c = 0; c < d; ++c) acc += q[c] * k[c];
                    s[static_cast<size_t>(j)] = acc * scale;
                    m = std::max(m, s[static_cast<size_t>(j)]);
                }
                float* out = &o[p.o_index(b, t, h)];
                for (int c = 0; c < d; ++c) out[c] = 0;
                if (m == -INFINITY) {
                    lse[p.lse_index(b, t, h)] = -INFINITY;
                    continue;
                }
                float l = 0;
                for (int j = 0; j < p.kv_lens[b]; ++j) {
                    if (!visible(j)) continue;
                    const float e = std::exp(s[static_cast<size_t>(j)] - m);
                    l += e;
                    const float* v = &p.v[p.kv_index(b, j, kvh)];
                    for (int c = 0; c < d; ++c) out[c] += e * v[c];
                }
                for (int c = 0; c < d; ++c) out[c] /= l;
                lse[p.lse_index(b, t, h)] = m + std::log(l);
            }
}

class MyKernel final : public Target {
public:
    explicit MyKernel(bool scale_twice) : scale_twice_(scale_twice) {}
    std::string name() const override { return scale_twice_ ? "my_kernel_scale_twice" : "my_kernel"; }
    Backend backend() const override { return Backend::cpu; }
    Mutant mutant() const override { return Mutant::none; }
    std::string description() const override { return "the example's naive fp32 attention"; }
    // What it cannot run is skipped with this reason, never judged.
    std::string unsupported(const Case& c) const override {
        return c.dtype == DType::f32 ? "" : "my kernel reads fp32 only";
    }
    // Where it rounds: fp32 accumulation, nothing stored in a narrower type,
    // one pass over the keys (no online rescales), exp within 2 ulps.
    PrecisionProfile profile(const Case&) const override { return PrecisionProfile{}; }
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>&) override {
        Observation obs;
        obs.o.assign(p.q.size(), std::numeric_limits<float>::quiet_NaN()); // poisoned: a row left out shows
        obs.lse.assign(static_cast<size_t>(p.total_q()) * p.n_q_heads, std::numeric_limits<float>::quiet_NaN());
        const float scale = static_cast<float>(scale_twice_ ? p.scale * p.scale : p.scale);
        my_attention(p, scale, obs.o, obs.lse);
        return obs; // no probe: the stage report says "records no probe"
    }
    // Each row is computed on its own: its bits cannot depend on its neighbours.
    bool promises_batch_invariance() const override { return true; }

private:
    bool scale_twice_;
};

} // namespace my_kernel
