#include "engine/case/case_sampler.hpp"

#include "engine/case/case_distribution.hpp"
#include "engine/case/rng.hpp"

namespace attncheck {

Case sample_wide_case(std::uint64_t seed, const SamplerLimits& lim) {
    DrawLimits dl;
    dl.max_len = lim.max_len;
    dl.max_decode_len = lim.max_kv_len;
    dl.max_q_heads = lim.max_q_heads;
    dl.max_work = lim.max_work;
    SeededChooser ch(seed);
    return draw_case({}, dl, ch);
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
