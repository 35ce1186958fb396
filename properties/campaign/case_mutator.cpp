#include "properties/campaign/case_mutator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/case/case_sampler.hpp"

namespace attncheck {

const std::vector<CaseMutationInfo>& case_mutations() {
    static const std::vector<CaseMutationInfo> v = {
#define ATTNCHECK_MUTATION_INFO(name, what) {CaseMutation::name, #name, what},
        ATTNCHECK_CASE_MUTATIONS(ATTNCHECK_MUTATION_INFO)
#undef ATTNCHECK_MUTATION_INFO
    };
    return v;
}

namespace {

// The tile widths the engine's families use (kernels/*: 16, 32, 64, 128) and
// multiples of them: edges where a loop bound or a mask index goes wrong.
int tile_edge(Rng& r) {
    static const int widths[] = {16, 32, 64, 128};
    const int w = widths[r.below(4)] * static_cast<int>(r.range(1, 4));
    return std::max(0, w + static_cast<int>(r.range(-1, 1)));
}

template <class T>
const T& any_of(Rng& r, const std::vector<T>& v) {
    return v[static_cast<std::size_t>(r.below(v.size()))];
}

int any_sequence(Rng& r, const Case& c) { return static_cast<int>(r.below(static_cast<std::uint64_t>(c.batch()))); }

int longest_kv(const Case& c) { return *std::max_element(c.kv_lens.begin(), c.kv_lens.end()); }

void scale_tensor(Rng& r, Case& c) {
    DataRecipe& d = c.data;
    // Toward the dtype's limit (fit_case halves back what overshoots) or toward 0.
    const double f = r.coin(0.5) ? std::exp2(static_cast<double>(r.range(2, 12))) : std::exp2(-r.range(2, 12));
    switch (r.below(3)) {
        case 0:
            d.q_scale *= f;
            d.q_bias *= f;
            break;
        case 1:
            d.k_scale *= f;
            d.k_bias *= f;
            break;
        default:
            d.v_scale *= f;
    }
}

void add_special(Rng& r, Case& c) {
    std::vector<int> with_q;
    for (int s = 0; s < c.batch(); ++s)
        if (c.q_lens[s] > 0) with_q.push_back(s);
    if (with_q.empty()) return;
    // In Q only: a NaN in K or V reaches tiled kernels' other rows as 0 * NaN
    // (docs/kernel-families.md), which the gates do not ask them to avoid.
    SpecialValue sv;
    sv.tensor = TensorId::q;
    sv.seq = any_of(r, with_q);
    sv.token = static_cast<int>(r.below(static_cast<std::uint64_t>(c.q_lens[sv.seq])));
    sv.head = static_cast<int>(r.below(static_cast<std::uint64_t>(c.n_q_heads)));
    sv.dim = static_cast<int>(r.below(static_cast<std::uint64_t>(c.head_dim)));
    const double inf = std::numeric_limits<double>::infinity();
    const double values[] = {std::numeric_limits<double>::quiet_NaN(), inf, -inf};
    sv.value = values[r.below(3)];
    c.data.specials = {sv};
}

void mutate_once(Case& c, CaseMutation kind, const MutationContext& ctx, Rng& r) {
    DataRecipe& d = c.data;
    const int s = any_sequence(r, c);
    switch (kind) {
        case CaseMutation::tile_edge:
            (r.coin(0.5) ? c.kv_lens[s] : c.q_lens[s]) = tile_edge(r);
            break;
        case CaseMutation::split_edge: {
            const int tiles = std::max(1, (longest_kv(c) + 63) / 64);
            const int choices[] = {tiles - 1, tiles, tiles + 1, 2 * tiles + 3, longest_kv(c) + 1};
            c.num_splits = std::clamp(choices[r.below(5)], 1, 64);
            break;
        }
        case CaseMutation::q_past_kv:
            c.q_lens[s] = c.kv_lens[s] + static_cast<int>(r.range(1, 17));
            break;
        case CaseMutation::empty_sequence:
            (r.coin(0.5) ? c.kv_lens[s] : c.q_lens[s]) = 0;
            break;
        case CaseMutation::ragged_batch:
            if (c.batch() > 1 && r.coin(0.4)) {
                c.q_lens.erase(c.q_lens.begin() + s);
                c.kv_lens.erase(c.kv_lens.begin() + s);
            } else {
                const int kv = r.coin(0.5) ? tile_edge(r) : static_cast<int>(r.range(0, 40));
                c.kv_lens.push_back(kv);
                c.q_lens.push_back(ctx.caps.decode_only || r.coin(0.5) ? 1 : static_cast<int>(r.range(0, kv + 1)));
            }
            break;
        case CaseMutation::gqa_ratio: {
            const auto& heads = case_distribution().heads.alts;
            const HeadPair hp = heads[static_cast<std::size_t>(r.below(heads.size()))].value;
            c.n_q_heads = hp.q;
            c.n_kv_heads = hp.kv;
            break;
        }
        case CaseMutation::head_dim: {
            const auto it = ctx.caps.head_dims.find(c.dtype);
            if (it != ctx.caps.head_dims.end() && !it->second.empty()) c.head_dim = any_of(r, it->second);
            break;
        }
        case CaseMutation::dtype:
            if (!ctx.caps.dtypes.empty()) c.dtype = any_of(r, ctx.caps.dtypes);
            break;
        case CaseMutation::magnitude:
            scale_tensor(r, c);
            break;
        case CaseMutation::outlier:
            if (d.outlier_channels.empty() || r.coin(0.5)) {
                const int ch = static_cast<int>(r.below(static_cast<std::uint64_t>(c.head_dim)));
                if (std::find(d.outlier_channels.begin(), d.outlier_channels.end(), ch) == d.outlier_channels.end())
                    d.outlier_channels.push_back(ch);
                d.outlier_factor = std::max(d.outlier_factor, 10.0);
            } else {
                d.outlier_factor *= 8.0;
            }
            break;
        case CaseMutation::sink:
            d.sink_tokens = static_cast<int>(r.range(1, 3));
            d.sink_factor = std::exp2(static_cast<double>(r.range(2, 6)));
            break;
        case CaseMutation::special_value:
            add_special(r, c);
            break;
        case CaseMutation::ties:
            if (r.coin(0.5))
                d.constant_k = !d.constant_k;
            else
                d.constant_v = !d.constant_v;
            break;
        case CaseMutation::reseed:
            d.seed = r.next();
            break;
        case CaseMutation::mask:
            c.causal = !c.causal;
            if (!c.causal) c.window = 0;
            break;
        case CaseMutation::window_edge: {
            c.causal = true;
            const int kv = c.kv_lens[s];
            const int choices[] = {1, 2, std::max(1, kv - 1), std::max(1, kv), kv + 1};
            c.window = choices[r.below(5)];
            break;
        }
        case CaseMutation::scale: {
            const double choices[] = {1.0, 0.5, 1.0 / 3.0, 0.01, 4.0};
            if (c.scale && r.coin(0.3))
                c.scale.reset();
            else
                c.scale = choices[r.below(5)];
            break;
        }
        case CaseMutation::page_edge: {
            if (!ctx.caps.paged_kv) break; // the target reads contiguous K and V only
            if (c.page_size > 0 && r.coin(0.2)) {
                c.page_size = 0;
                c.page_seed = 0;
                break;
            }
            const int sizes[] = {1, 5, 16, 32, 64, 128};
            if (c.page_size == 0 || r.coin(0.5)) c.page_size = sizes[r.below(6)];
            c.page_seed = r.next() >> 34;
            // The page-boundary bugs live at the first key of a page and one past a page's end.
            const int pages = static_cast<int>(r.range(1, 4));
            c.kv_lens[s] = std::max(0, pages * c.page_size + static_cast<int>(r.range(-1, 1)));
            break;
        }
    }
}

} // namespace

bool fit_case(Case& c, const MutationContext& ctx) {
    const DrawLimits& lim = ctx.limits;
    if (c.q_lens.empty()) return false;
    while (c.batch() > lim.max_batch) {
        c.q_lens.pop_back();
        c.kv_lens.pop_back();
    }
    if (c.n_q_heads > lim.max_q_heads) return false;
    const int cap = std::max(lim.max_len, lim.max_decode_len);
    for (int s = 0; s < c.batch(); ++s) {
        if (ctx.caps.decode_only) c.q_lens[s] = std::min(c.q_lens[s], 1);
        const bool decode_step = c.q_lens[s] <= 1;
        c.kv_lens[s] = std::clamp(c.kv_lens[s], 0, decode_step ? cap : lim.max_len);
        c.q_lens[s] = std::clamp(c.q_lens[s], 0, lim.max_len);
    }
    cap_case_work(c, lim.max_work);
    const auto dims = ctx.caps.head_dims.find(c.dtype);
    if (!ctx.caps.empty() && (dims == ctx.caps.head_dims.end() ||
                              std::find(dims->second.begin(), dims->second.end(), c.head_dim) == dims->second.end()))
        return false;
    DataRecipe& d = c.data;
    std::erase_if(d.outlier_channels, [&](int ch) { return ch >= c.head_dim; });
    std::erase_if(d.specials, [&](const SpecialValue& sv) {
        return sv.seq >= c.batch() || sv.token >= c.q_lens[sv.seq] || sv.head >= c.n_q_heads || sv.dim >= c.head_dim;
    });
    if (c.window > 0 && !c.causal) c.window = 0;
    fit_recipe_to_dtype(c);
    try {
        validate(c);
    } catch (const CaseError&) {
        return false;
    }
    return !ctx.supported || ctx.supported(c);
}

Case mutate_case_as(const Case& c, const MutationContext& ctx, Rng& rng, CaseMutation kind, bool* changed) {
    // A few tries: a random choice can land outside the target (an odd head
    // dim for a tensor-core path, a long prefill for a decode target).
    for (int attempt = 0; attempt < 8; ++attempt) {
        Case m = c;
        mutate_once(m, kind, ctx, rng);
        if (fit_case(m, ctx) && !(m == c)) { // fitting may undo the change (a length capped back)
            if (changed) *changed = true;
            return m;
        }
    }
    if (changed) *changed = false;
    return c;
}

Case mutate_case(const Case& c, const MutationContext& ctx, Rng& rng, CaseMutation* applied) {
    for (int attempt = 0; attempt < 8; ++attempt) {
        const auto kind = static_cast<CaseMutation>(rng.below(static_cast<std::uint64_t>(case_mutation_count())));
        bool changed = false;
        Case m = mutate_case_as(c, ctx, rng, kind, &changed);
        if (changed) {
            if (applied) *applied = kind;
            return m;
        }
    }
    return c;
}

Case cross_cases(const Case& shape_from, const Case& data_from, const MutationContext& ctx, Rng& rng) {
    Case c = shape_from;
    c.data = data_from.data;
    c.values.reset();
    if (rng.coin(0.5)) c.dtype = data_from.dtype;
    if (fit_case(c, ctx)) return c;
    return shape_from;
}

} // namespace attncheck
