// The Case's types (names, bitwise equality) and its validation: every
// rule docs/case-format.md lists, each broken one a CaseError naming the
// field, checked before anything is generated (so a hostile case cannot
// exhaust memory or overflow the dtype). The JSON form is case_json.cpp.
#include "engine/case/case.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "engine/case/paged_kv.hpp"

namespace attncheck {

const char* dist_name(Dist d) {
    switch (d) {
        case Dist::normal:
            return "normal";
        case Dist::uniform:
            return "uniform";
        case Dist::sparse_int:
            return "sparse_int";
    }
    return "?";
}

const char* tensor_name(TensorId t) {
    switch (t) {
        case TensorId::q:
            return "q";
        case TensorId::k:
            return "k";
        case TensorId::v:
            return "v";
    }
    return "?";
}

namespace {

// Bitwise equality for doubles, so NaN == NaN and 0.0 != -0.0: two cases are
// equal exactly when they replay the same bits.
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!same_bits(a[i], b[i])) return false;
    return true;
}

} // namespace

bool SpecialValue::operator==(const SpecialValue& o) const {
    return tensor == o.tensor && seq == o.seq && token == o.token && head == o.head && dim == o.dim &&
           same_bits(value, o.value);
}
bool DataRecipe::operator==(const DataRecipe& o) const {
    return dist == o.dist && seed == o.seed && same_bits(q_scale, o.q_scale) && same_bits(k_scale, o.k_scale) &&
           same_bits(v_scale, o.v_scale) && outlier_channels == o.outlier_channels &&
           same_bits(outlier_factor, o.outlier_factor) && sink_tokens == o.sink_tokens &&
           same_bits(sink_factor, o.sink_factor) && same_bits(q_bias, o.q_bias) && same_bits(k_bias, o.k_bias) &&
           constant_q == o.constant_q && constant_k == o.constant_k && constant_v == o.constant_v &&
           specials == o.specials;
}
bool ExplicitValues::operator==(const ExplicitValues& o) const {
    return same_bits(q, o.q) && same_bits(k, o.k) && same_bits(v, o.v);
}
bool Case::operator==(const Case& o) const {
    bool scale_eq = scale.has_value() == o.scale.has_value() && (!scale || same_bits(*scale, *o.scale));
    return n_q_heads == o.n_q_heads && n_kv_heads == o.n_kv_heads && head_dim == o.head_dim && q_lens == o.q_lens &&
           kv_lens == o.kv_lens && causal == o.causal && window == o.window && num_splits == o.num_splits &&
           page_size == o.page_size && page_seed == o.page_seed && scale_eq && dtype == o.dtype && data == o.data &&
           values == o.values;
}

double Case::effective_scale() const { return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(head_dim)); }

namespace {

[[noreturn]] void fail(const std::string& msg) { throw CaseError(msg); }

void check_positive_finite(double x, const char* field) {
    if (!std::isfinite(x) || !(x > 0)) fail(fmt::format("{} must be a positive finite number (got {})", field, x));
}

double dist_bound(Dist d) {
    switch (d) {
        case Dist::normal:
            return 6.0; // Irwin-Hall(12) - 6
        case Dist::uniform:
            return 1.0; // [-1, 1)
        case Dist::sparse_int:
            return 3.0; // integers in [-3, 3]
    }
    return 0.0;
}

long long token_total(const std::vector<int>& lens) {
    long long t = 0;
    for (int l : lens) t += l;
    return t;
}

} // namespace

double recipe_max_abs(const Case& c, TensorId t) {
    const DataRecipe& r = c.data;
    const double b = dist_bound(r.dist);
    const double outlier = r.outlier_channels.empty() ? 1.0 : std::max(1.0, r.outlier_factor);
    switch (t) {
        case TensorId::q:
            return (r.q_scale * b + 6.0 * std::fabs(r.q_bias) + (r.sink_tokens > 0 ? r.q_scale : 0.0)) * outlier;
        case TensorId::k: {
            double plain = r.k_scale * b + 6.0 * std::fabs(r.k_bias);
            double sink = r.sink_tokens > 0 ? r.sink_factor * r.k_scale : 0.0;
            return std::max(plain, sink) * outlier;
        }
        case TensorId::v:
            return r.v_scale * b;
    }
    return 0.0;
}

void validate(const Case& c) {
    using L = CaseLimits;
    if (c.n_q_heads < 1 || c.n_q_heads > L::max_heads)
        fail(fmt::format("shape.n_q_heads must be in [1, {}] (got {})", L::max_heads, c.n_q_heads));
    if (c.n_kv_heads < 1 || c.n_kv_heads > L::max_heads)
        fail(fmt::format("shape.n_kv_heads must be in [1, {}] (got {})", L::max_heads, c.n_kv_heads));
    if (c.n_q_heads % c.n_kv_heads != 0)
        fail(
            fmt::format("shape.n_q_heads ({}) must be a multiple of shape.n_kv_heads ({})", c.n_q_heads, c.n_kv_heads));
    if (c.head_dim < 1 || c.head_dim > L::max_head_dim)
        fail(fmt::format("shape.head_dim must be in [1, {}] (got {})", L::max_head_dim, c.head_dim));
    if (c.q_lens.empty()) fail("shape: batch must be at least 1");
    if (c.batch() > L::max_batch)
        fail(fmt::format("shape: batch must be at most {} (got {})", L::max_batch, c.batch()));
    if (c.kv_lens.size() != c.q_lens.size())
        fail(fmt::format("shape: q_lens has {} entries but kv_lens has {}; both need one per sequence", c.q_lens.size(),
                         c.kv_lens.size()));
    for (int b = 0; b < c.batch(); ++b) {
        if (c.q_lens[b] < 0 || c.q_lens[b] > L::max_len)
            fail(fmt::format("shape.q_lens[{}] must be in [0, {}] (got {})", b, L::max_len, c.q_lens[b]));
        if (c.kv_lens[b] < 0 || c.kv_lens[b] > L::max_len)
            fail(fmt::format("shape.kv_lens[{}] must be in [0, {}] (got {})", b, L::max_len, c.kv_lens[b]));
    }
    const long long q_elems = token_total(c.q_lens) * c.n_q_heads * c.head_dim;
    const long long kv_elems = token_total(c.kv_lens) * c.n_kv_heads * c.head_dim;
    if (q_elems > L::max_elements || kv_elems > L::max_elements)
        fail(fmt::format("shape: case too large ({} Q elements, {} K elements; limit {} per tensor)", q_elems, kv_elems,
                         L::max_elements));
    if (c.window < 0) fail(fmt::format("features.window must be >= 0 (0 = none; got {})", c.window));
    if (c.window > 0 && !c.causal) fail("features.window needs features.causal = true (a window is causal-only)");
    if (c.num_splits < 1 || c.num_splits > L::max_splits)
        fail(fmt::format("features.num_splits must be in [1, {}] (got {})", L::max_splits, c.num_splits));
    if (c.page_size < 0 || c.page_size > L::max_page_size)
        fail(fmt::format("features.page_size must be in [0, {}] (0 = contiguous KV; got {})", L::max_page_size,
                         c.page_size));
    if (c.page_size > 0) {
        const long long pool = paged_pool_elems(c.kv_lens, c.page_size, c.n_kv_heads, c.head_dim);
        if (pool > L::max_elements)
            fail(
                fmt::format("features.page_size: the paged KV pool would hold {} elements (limit {}); use smaller "
                            "pages",
                            pool, L::max_elements));
    }
    if (c.scale) {
        if (!std::isfinite(*c.scale) || *c.scale == 0.0 || std::fabs(*c.scale) > 1e6)
            fail(fmt::format("features.scale must be finite, non-zero and |scale| <= 1e6 (got {})", *c.scale));
    }

    const DataRecipe& r = c.data;
    check_positive_finite(r.q_scale, "data.q_scale");
    check_positive_finite(r.k_scale, "data.k_scale");
    check_positive_finite(r.v_scale, "data.v_scale");
    check_positive_finite(r.outlier_factor, "data.outlier_factor");
    check_positive_finite(r.sink_factor, "data.sink_factor");
    if (!std::isfinite(r.q_bias) || !std::isfinite(r.k_bias)) fail("data.q_bias and data.k_bias must be finite");
    std::set<int> seen;
    for (int ch : r.outlier_channels) {
        if (ch < 0 || ch >= c.head_dim)
            fail(fmt::format("data.outlier_channels: channel {} outside [0, head_dim={})", ch, c.head_dim));
        if (!seen.insert(ch).second) fail(fmt::format("data.outlier_channels: channel {} listed twice", ch));
    }
    if (r.sink_tokens < 0 || r.sink_tokens > L::max_len)
        fail(fmt::format("data.sink_tokens must be in [0, {}] (got {})", L::max_len, r.sink_tokens));

    const double maxf = max_finite(c.dtype);
    if (!c.values) {
        for (TensorId t : {TensorId::q, TensorId::k, TensorId::v}) {
            double m = recipe_max_abs(c, t);
            if (!(m <= maxf))
                fail(fmt::format("data: the recipe can produce |{}| up to {:g}, above {}'s largest finite value {:g}",
                                 tensor_name(t), m, dtype_name(c.dtype), maxf));
        }
    } else {
        const ExplicitValues& ev = *c.values;
        auto check = [&](const std::vector<double>& vals, long long expect, const char* name) {
            if (static_cast<long long>(vals.size()) != expect)
                fail(fmt::format("values.{} has {} numbers; the shape needs {}", name, vals.size(), expect));
            for (size_t i = 0; i < vals.size(); ++i)
                if (std::isfinite(vals[i]) && std::fabs(vals[i]) > maxf)
                    fail(fmt::format("values.{}[{}] = {:g} overflows {} (largest finite {:g})", name, i, vals[i],
                                     dtype_name(c.dtype), maxf));
        };
        check(ev.q, q_elems, "q");
        check(ev.k, kv_elems, "k");
        check(ev.v, kv_elems, "v");
    }
    for (size_t i = 0; i < r.specials.size(); ++i) {
        const SpecialValue& s = r.specials[i];
        const bool is_q = s.tensor == TensorId::q;
        if (s.seq < 0 || s.seq >= c.batch())
            fail(fmt::format("data.specials[{}].seq {} outside [0, {})", i, s.seq, c.batch()));
        const int len = is_q ? c.q_lens[s.seq] : c.kv_lens[s.seq];
        const int heads = is_q ? c.n_q_heads : c.n_kv_heads;
        if (s.token < 0 || s.token >= len)
            fail(fmt::format("data.specials[{}].token {} outside [0, {}) for sequence {}", i, s.token, len, s.seq));
        if (s.head < 0 || s.head >= heads)
            fail(fmt::format("data.specials[{}].head {} outside [0, {})", i, s.head, heads));
        if (s.dim < 0 || s.dim >= c.head_dim)
            fail(fmt::format("data.specials[{}].dim {} outside [0, {})", i, s.dim, c.head_dim));
        if (std::isfinite(s.value) && std::fabs(s.value) > maxf)
            fail(fmt::format("data.specials[{}].value {:g} overflows {}", i, s.value, dtype_name(c.dtype)));
    }
}

} // namespace attncheck
