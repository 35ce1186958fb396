#include "engine/case/case_sampler.hpp"

#include <algorithm>
#include <cmath>

#include "engine/case/rng.hpp"

namespace attncheck {

namespace {

double log_uniform(Rng& r, double lo, double hi) {
    return std::exp(std::log(lo) + r.uniform01() * (std::log(hi) - std::log(lo)));
}

template <class T, size_t N>
T pick(Rng& r, const T (&xs)[N]) {
    return xs[r.below(N)];
}

int sample_len(Rng& r, int max_len) {
    switch (r.below(6)) {
        case 0:
            return 0;
        case 1:
            return 1;
        case 2:
            return static_cast<int>(r.range(2, 17));
        case 3: { // tile boundaries: 16, 32, 64, 128 +- 1
            const int t = pick(r, {16, 32, 64, 128});
            return std::min(max_len, t + static_cast<int>(r.range(-1, 1)));
        }
        case 4:
            return static_cast<int>(r.range(2, 300));
        default:
            if (max_len >= 1024 && r.coin(0.5)) return static_cast<int>(r.range(1024, max_len));
            return static_cast<int>(r.range(2, 600));
    }
}

} // namespace

Case sample_wide_case(std::uint64_t seed, const SamplerLimits& lim) {
    Rng r(seed);
    Case c;
    c.dtype = pick(r, {DType::f32, DType::f16, DType::bf16});
    const int kv = pick(r, {1, 1, 2, 2, 3, 4});
    int g = pick(r, {1, 2, 3, 4, 7, 8});
    while (kv * g > lim.max_q_heads) g = std::max(1, g / 2);
    c.n_kv_heads = kv;
    c.n_q_heads = kv * g;
    c.head_dim =
        r.coin(0.6) ? pick(r, {1, 2, 3, 8, 16, 32, 63, 64, 80, 96, 128, 255, 256}) : static_cast<int>(r.range(1, 256));
    const int batch = static_cast<int>(r.range(1, 3));
    c.q_lens.clear();
    c.kv_lens.clear();
    for (int b = 0; b < batch; ++b) {
        int kl = sample_len(r, lim.max_kv_len);
        int ql = r.coin(0.3) ? 1 : sample_len(r, std::max(1, kl + 8));
        if (r.coin(0.2)) ql = kl; // q_len == kv_len, but never the only shape
        c.q_lens.push_back(ql);
        c.kv_lens.push_back(kl);
    }
    // Keep each case cheap: shrink query lengths until the work fits.
    auto work = [&] {
        long long w = 0;
        for (int b = 0; b < batch; ++b)
            w += static_cast<long long>(c.q_lens[b]) * std::max(1, c.kv_lens[b]) * c.head_dim * c.n_q_heads;
        return w;
    };
    while (work() > lim.max_work) {
        for (int& ql : c.q_lens) ql = ql / 2;
        if (c.n_q_heads > c.n_kv_heads && work() > lim.max_work) c.n_q_heads = c.n_kv_heads;
    }
    c.causal = r.coin(0.5);
    if (c.causal && r.coin(0.25)) c.window = static_cast<int>(r.range(1, 64));
    if (r.coin(0.2)) c.scale = (r.coin(0.5) ? 1.0 : -1.0) * log_uniform(r, 0.01, 2.0);
    c.num_splits = static_cast<int>(r.range(1, 8));

    DataRecipe& d = c.data;
    d.seed = r.next();
    d.dist = pick(r, {Dist::normal, Dist::normal, Dist::uniform, Dist::sparse_int});
    // Magnitudes: logits from ~1e-6 up to far beyond exp's overflow points
    // (11 for fp16, 88.7 for fp32) and the fp16 range (65504).
    const double top = c.dtype == DType::f16 ? 1e3 : 3e3;
    d.q_scale = log_uniform(r, 1e-3, r.coin(0.7) ? 4.0 : top);
    d.k_scale = log_uniform(r, 1e-3, r.coin(0.7) ? 4.0 : top);
    d.v_scale = log_uniform(r, 1e-3, 1e3);
    if (r.coin(0.15)) {
        const int n_out = static_cast<int>(r.range(1, std::min(3, c.head_dim)));
        for (int i = 0; i < n_out; ++i) {
            int ch = static_cast<int>(r.below(static_cast<std::uint64_t>(c.head_dim)));
            if (std::find(d.outlier_channels.begin(), d.outlier_channels.end(), ch) == d.outlier_channels.end())
                d.outlier_channels.push_back(ch);
        }
        d.outlier_factor = log_uniform(r, 10.0, 1000.0);
    }
    if (r.coin(0.15)) {
        d.sink_tokens = static_cast<int>(r.range(1, 4));
        d.sink_factor = log_uniform(r, 1.0, 50.0);
    }
    if (r.coin(0.15)) d.k_bias = d.k_scale * log_uniform(r, 0.1, 30.0);
    if (r.coin(0.1)) d.q_bias = d.q_scale * log_uniform(r, 0.1, 3.0);
    if (r.coin(0.05)) d.constant_v = true;
    if (r.coin(0.03)) d.constant_k = true;
    fit_recipe_to_dtype(c);
    validate(c);
    return c;
}

void fit_recipe_to_dtype(Case& c) {
    DataRecipe& d = c.data;
    const double maxf = max_finite(c.dtype);
    for (int i = 0; i < 200; ++i) {
        const double mq = recipe_max_abs(c, TensorId::q), mk = recipe_max_abs(c, TensorId::k),
                     mv = recipe_max_abs(c, TensorId::v);
        if (mq <= maxf && mk <= maxf && mv <= maxf) break;
        if (mq > maxf) {
            d.q_scale *= 0.5;
            d.q_bias *= 0.5;
        }
        if (mk > maxf) {
            d.k_scale *= 0.5;
            d.k_bias *= 0.5;
        }
        if (mv > maxf) d.v_scale *= 0.5;
    }
}

Case sample_well_conditioned_case(std::uint64_t seed) {
    Rng r(seed ^ 0x5eed5eed5eedull);
    Case c;
    c.dtype = DType::f32;
    c.n_kv_heads = static_cast<int>(r.range(1, 2));
    c.n_q_heads = c.n_kv_heads * static_cast<int>(r.range(1, 3));
    c.head_dim = static_cast<int>(r.range(4, 128));
    const int kl = static_cast<int>(r.range(2, 256));
    c.kv_lens = {kl};
    c.q_lens = {static_cast<int>(r.range(1, 4))};
    c.causal = false;
    c.data.seed = r.next();
    c.data.dist = Dist::normal;
    c.data.q_scale = 0.5 + r.uniform01();
    c.data.k_scale = 0.5 + r.uniform01();
    c.data.v_scale = 0.5 + r.uniform01();
    validate(c);
    return c;
}

} // namespace attncheck
