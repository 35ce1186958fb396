// Materialization of a Case's data recipe. Every random draw comes from a
// stream forked by (tensor, sequence) so that changing one sequence's length
// does not change another sequence's values: shrinking a batch keeps the
// surviving sequences' data, which keeps shrunk counterexamples meaningful.
#include "engine/case/problem.hpp"

#include <algorithm>
#include <cmath>

#include "engine/case/dtype_bulk.hpp"
#include "engine/case/recipe.hpp"
#include "engine/case/rng.hpp"

namespace attncheck {

namespace {

std::vector<long long> prefix(const std::vector<int>& lens) {
    std::vector<long long> s(lens.size(), 0);
    for (size_t i = 1; i < lens.size(); ++i) s[i] = s[i - 1] + lens[i - 1];
    return s;
}

} // namespace

RecipeTables recipe_tables(const Case& c) {
    const DataRecipe& r = c.data;
    const size_t d = static_cast<size_t>(c.head_dim);
    RecipeTables t;
    t.sink_dir.resize(c.n_kv_heads * d);
    t.qb.resize(c.n_q_heads * d);
    t.kb.resize(c.n_kv_heads * d);
    const Rng root(r.seed);
    Rng rs = root.fork(kTagSink), rq = root.fork(kTagQBias), rk = root.fork(kTagKBias);
    for (auto& x : t.sink_dir) x = rs.coin(0.5) ? 1.0 : -1.0;
    for (auto& x : t.qb) x = rq.normal();
    for (auto& x : t.kb) x = rk.normal();
    t.out_mult.assign(d, 1.0);
    for (int ch : r.outlier_channels) t.out_mult[static_cast<size_t>(ch)] = r.outlier_factor;
    return t;
}

AttentionProblem problem_shape(const Case& c) {
    AttentionProblem p;
    p.n_q_heads = c.n_q_heads;
    p.n_kv_heads = c.n_kv_heads;
    p.head_dim = c.head_dim;
    p.q_lens = c.q_lens;
    p.kv_lens = c.kv_lens;
    p.q_start = prefix(c.q_lens);
    p.kv_start = prefix(c.kv_lens);
    p.causal = c.causal;
    p.window = c.window;
    p.num_splits = c.num_splits;
    p.page_size = c.page_size;
    p.page_seed = c.page_seed;
    p.scale = c.effective_scale();
    p.dtype = c.dtype;
    return p;
}

AttentionProblem materialize(const Case& c) {
    validate(c);
    AttentionProblem p = problem_shape(c);
    const int d = c.head_dim;
    const size_t nq = p.q_elems(), nkv = p.kv_elems();
    p.q.assign(nq, 0.0f);
    p.k.assign(nkv, 0.0f);
    p.v.assign(nkv, 0.0f);

    if (c.values) {
        std::copy_n(c.values->q.begin(), nq, p.q.begin());
        std::copy_n(c.values->k.begin(), nkv, p.k.begin());
        std::copy_n(c.values->v.begin(), nkv, p.v.begin());
        for (auto* x : {&p.q, &p.k, &p.v}) round_floats_to(c.dtype, x->data(), x->size());
    } else {
        const DataRecipe& r = c.data;
        const Rng root(r.seed);
        const RecipeTables tab = recipe_tables(c);
        const std::vector<double>& sink_dir = tab.sink_dir;
        const std::vector<double>& qb = tab.qb;
        const std::vector<double>& kb = tab.kb;
        auto out_mult = [&](int ch) { return tab.out_mult[static_cast<size_t>(ch)]; };

        for (int b = 0; b < c.batch(); ++b) {
            const std::uint64_t seq_tag = static_cast<std::uint64_t>(b) << 8;
            Rng rq = root.fork(seq_tag | kTagQ), rk = root.fork(seq_tag | kTagK), rv = root.fork(seq_tag | kTagV);
            for (int t = 0; t < c.q_lens[b]; ++t)
                for (int h = 0; h < c.n_q_heads; ++h) {
                    const int kvh = h / p.group();
                    float* row = &p.q[static_cast<size_t>(p.q_index(b, t, h))];
                    for (int ch = 0; ch < d; ++ch) {
                        double x = r.q_scale * draw(rq, r.dist) + r.q_bias * qb[static_cast<size_t>(h) * d + ch];
                        if (r.sink_tokens > 0) x += r.q_scale * sink_dir[static_cast<size_t>(kvh) * d + ch];
                        row[ch] = static_cast<float>(x * out_mult(ch));
                    }
                }
            for (int t = 0; t < c.kv_lens[b]; ++t)
                for (int h = 0; h < c.n_kv_heads; ++h) {
                    float* krow = &p.k[static_cast<size_t>(p.kv_index(b, t, h))];
                    float* vrow = &p.v[static_cast<size_t>(p.kv_index(b, t, h))];
                    for (int ch = 0; ch < d; ++ch) {
                        double x = r.k_scale * draw(rk, r.dist) + r.k_bias * kb[static_cast<size_t>(h) * d + ch];
                        if (t < r.sink_tokens)
                            x = r.sink_factor * r.k_scale * sink_dir[static_cast<size_t>(h) * d + ch];
                        krow[ch] = static_cast<float>(x * out_mult(ch));
                        vrow[ch] = static_cast<float>(r.v_scale * draw(rv, r.dist));
                    }
                }
        }
        auto make_constant = [&](std::vector<float>& x, const std::vector<int>& lens, bool is_q) {
            const int heads = is_q ? c.n_q_heads : c.n_kv_heads;
            for (int b = 0; b < c.batch(); ++b)
                for (int t = 1; t < lens[b]; ++t)
                    for (int h = 0; h < heads; ++h) {
                        long long dst = is_q ? p.q_index(b, t, h) : p.kv_index(b, t, h);
                        long long src = is_q ? p.q_index(b, 0, h) : p.kv_index(b, 0, h);
                        for (int ch = 0; ch < d; ++ch)
                            x[static_cast<size_t>(dst + ch)] = x[static_cast<size_t>(src + ch)];
                    }
        };
        if (r.constant_q) make_constant(p.q, c.q_lens, true);
        if (r.constant_k) make_constant(p.k, c.kv_lens, false);
        if (r.constant_v) make_constant(p.v, c.kv_lens, false);
        for (auto* x : {&p.q, &p.k, &p.v}) round_floats_to(c.dtype, x->data(), x->size());
    }
    for (const SpecialValue& s : c.data.specials) {
        const bool is_q = s.tensor == TensorId::q;
        long long base = is_q ? p.q_index(s.seq, s.token, s.head) : p.kv_index(s.seq, s.token, s.head);
        std::vector<float>& x = is_q ? p.q : s.tensor == TensorId::k ? p.k : p.v;
        x[static_cast<size_t>(base + s.dim)] = round_to(c.dtype, s.value);
    }
    return p;
}

Case shape_of(const AttentionProblem& p) {
    Case c;
    c.n_q_heads = p.n_q_heads;
    c.n_kv_heads = p.n_kv_heads;
    c.head_dim = p.head_dim;
    c.q_lens = p.q_lens;
    c.kv_lens = p.kv_lens;
    c.causal = p.causal;
    c.window = p.window;
    c.num_splits = p.num_splits;
    c.page_size = p.page_size;
    c.page_seed = p.page_seed;
    c.scale = p.scale;
    c.dtype = p.dtype;
    return c;
}

} // namespace attncheck
