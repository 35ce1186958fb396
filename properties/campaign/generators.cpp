#include "properties/campaign/generators.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/case/case_sampler.hpp"

namespace attncheck {

namespace {

struct HeadPair {
    int q, kv;
};

// Simplest first: shrinking walks toward the front.
const std::vector<HeadPair>& head_pairs() {
    static const std::vector<HeadPair> v = {{1, 1}, {2, 1}, {2, 2}, {4, 2},  {3, 1},  {4, 1},  {6, 2},  {8, 2},
                                            {4, 4}, {6, 3}, {8, 1}, {12, 2}, {14, 2}, {16, 2}, {28, 4}, {32, 4}};
    return v;
}

template <class T>
T pick(Chooser& ch, const std::vector<T>& v) {
    return v[static_cast<std::size_t>(ch.range(0, static_cast<long long>(v.size())))];
}
// True about once in n draws; shrinks to false.
bool one_in(Chooser& ch, int n) { return ch.range(0, n) == n - 1; }
int range(Chooser& ch, int lo, int hi) { return static_cast<int>(ch.range(lo, hi)); }

int gen_len(Chooser& ch, int max_len) {
    // Small lengths first (shrinking target), then the tile edges, then any.
    static const std::vector<int> edges = {15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};
    switch (range(ch, 0, 3)) {
        case 0:
            return range(ch, 0, 9);
        case 1:
            return pick(ch, edges);
        default:
            return range(ch, 0, max_len + 1);
    }
}

// RapidCheck's elementOf / oneOf / weightedElement do not shrink toward
// their first alternative; an index drawn with inRange does (toward 0), and
// grows with the size parameter, so early cases are the simple ones.
class RapidCheckChooser final : public Chooser {
public:
    long long range(long long lo, long long hi) override { return *rc::gen::inRange(lo, hi); }
};

long long work_of(const Case& c) {
    long long w = 0;
    for (int s = 0; s < c.batch(); ++s)
        w += static_cast<long long>(std::max(c.q_lens[s], 1)) * std::max(c.kv_lens[s], 1) * c.n_q_heads * c.head_dim;
    return w;
}

} // namespace

void showValue(const Case& c, std::ostream& os) { os << case_to_json(c); }

std::string case_shape_summary(const Case& c) {
    std::string s = fmt::format("batch {}, heads {}/{}, d {}, q {}, kv {}, {}", c.batch(), c.n_q_heads, c.n_kv_heads,
                                c.head_dim, c.q_lens, c.kv_lens, dtype_name(c.dtype));
    if (c.causal) s += c.window > 0 ? fmt::format(", causal window {}", c.window) : ", causal";
    if (c.num_splits > 1) s += fmt::format(", {} splits", c.num_splits);
    return s;
}

Case build_case(const Capabilities& caps, const GenLimits& lim, Chooser& ch) {
    Case c;
    c.dtype = pick(ch, caps.dtypes);
    c.head_dim = pick(ch, caps.head_dims.at(c.dtype));
    const HeadPair hp = pick(ch, head_pairs());
    c.n_q_heads = hp.q;
    c.n_kv_heads = hp.kv;

    const int batch = range(ch, 1, lim.max_batch + 1);
    c.q_lens.clear();
    c.kv_lens.clear();
    for (int s = 0; s < batch; ++s) {
        if (caps.decode_only) {
            c.q_lens.push_back(one_in(ch, 8) ? 0 : 1);
            c.kv_lens.push_back(one_in(ch, 3) ? range(ch, 0, lim.max_decode_len + 1) : gen_len(ch, lim.max_len));
        } else {
            c.q_lens.push_back(gen_len(ch, lim.max_len));
            c.kv_lens.push_back(gen_len(ch, lim.max_len));
        }
    }
    // Cap the work: halve the longest lengths (deterministically, so a
    // shrunk candidate is capped the same way).
    while (work_of(c) > lim.max_work) {
        int* longest = &c.q_lens[0];
        for (int& x : c.q_lens) longest = x > *longest ? &x : longest;
        for (int& x : c.kv_lens) longest = x > *longest ? &x : longest;
        if (*longest <= 1) break;
        *longest /= 2;
    }

    c.causal = one_in(ch, 2);
    c.window = c.causal && one_in(ch, 3) ? range(ch, 1, 40) : 0;
    c.num_splits = one_in(ch, 2) ? range(ch, 1, 20) : 1;
    if (one_in(ch, 10)) c.scale = pick(ch, std::vector<double>{0.5, 0.3, 1.0 / 3.0, 0.01});

    DataRecipe& d = c.data;
    d.dist = pick(ch, std::vector<Dist>{Dist::sparse_int, Dist::normal, Dist::uniform});
    d.seed = static_cast<std::uint64_t>(ch.range(0, 1u << 30));
    // Target size of the largest logits: about 3 sigma of scale * q.k for
    // normal data with q_scale * k_scale = level / 3.
    const double level = pick(ch, std::vector<double>{1.0, 1e-3, 11.0, 88.7, 1000.0, 65504.0});
    const double k_skew = pick(ch, std::vector<double>{1.0, 30.0, 1.0 / 30.0}); // K magnitude sweep
    const double qk = std::sqrt(level / 3.0);
    d.q_scale = qk / std::sqrt(k_skew);
    d.k_scale = qk * std::sqrt(k_skew);
    d.v_scale = pick(ch, std::vector<double>{1.0, 1e-3, 100.0});
    if (one_in(ch, 4)) {
        d.outlier_channels = {one_in(ch, 2) ? c.head_dim - 1 : 0};
        d.outlier_factor = one_in(ch, 2) ? 100.0 : 10.0;
    }
    d.sink_tokens = one_in(ch, 3) ? range(ch, 1, 3) : 0;
    if (d.sink_tokens > 0) d.sink_factor = one_in(ch, 2) ? 20.0 : 4.0;
    d.k_bias = (one_in(ch, 4) ? (one_in(ch, 2) ? 50.0 : 2.0) : 0.0) * d.k_scale;
    d.q_bias = (one_in(ch, 5) ? 0.5 : 0.0) * d.q_scale;
    d.constant_k = one_in(ch, 12); // ties
    d.constant_v = one_in(ch, 12);
    // Special values where they are meaningful: a NaN or an inf in one
    // query element. That row's output is undefined and not judged, but
    // no other row may change (batch, padding and causal gates compare
    // rows). Not in K or V: a NaN in a masked key of a visited tile
    // reaches tiled kernels' rows as 0 * NaN (docs/kernel-families.md).
    if (one_in(ch, 15)) {
        std::vector<int> with_q;
        for (int s = 0; s < c.batch(); ++s)
            if (c.q_lens[s] > 0) with_q.push_back(s);
        if (!with_q.empty()) {
            SpecialValue sv;
            sv.tensor = TensorId::q;
            sv.seq = pick(ch, with_q);
            sv.token = range(ch, 0, c.q_lens[sv.seq]);
            sv.head = range(ch, 0, c.n_q_heads);
            sv.dim = range(ch, 0, c.head_dim);
            sv.value =
                one_in(ch, 2) ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
            d.specials.push_back(sv);
        }
    }
    fit_recipe_to_dtype(c);
    validate(c);
    return c;
}

rc::Gen<Case> gen_case(const Capabilities& caps, const GenLimits& lim) {
    return rc::gen::exec([caps, lim] {
        RapidCheckChooser ch;
        return build_case(caps, lim, ch);
    });
}

} // namespace attncheck
