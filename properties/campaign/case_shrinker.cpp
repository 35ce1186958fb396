// The greedy case shrinker: its reductions, one small function each, listed
// once in kReductions (adding one is a function and a table line), and the
// walk over them. What it does and its limits: case_shrinker.hpp.
#include "properties/campaign/case_shrinker.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "properties/campaign/generators.hpp"

namespace attncheck {

namespace {

using Candidates = std::vector<Case>;

// Lengths: 0 and 1 first (empty and single-token sequences are where edge
// bugs live), then the binary search.
std::vector<int> shorter(int len) {
    std::vector<int> v = shrink_values_below(len, 0);
    if (len > 2) v.insert(v.begin() + 1, 1);
    return v;
}

// A reduction that shrinks a dimension takes the specials and outlier
// channels outside the new shape with it; validate() would reject them.
void fit_recipe(Case& c) {
    auto& sp = c.data.specials;
    sp.erase(std::remove_if(sp.begin(), sp.end(),
                            [&](const SpecialValue& s) {
                                if (s.seq >= c.batch()) return true;
                                const bool q = s.tensor == TensorId::q;
                                const auto b = static_cast<std::size_t>(s.seq);
                                return s.token >= (q ? c.q_lens[b] : c.kv_lens[b]) ||
                                       s.head >= (q ? c.n_q_heads : c.n_kv_heads) || s.dim >= c.head_dim;
                            }),
             sp.end());
    auto& oc = c.data.outlier_channels;
    oc.erase(std::remove_if(oc.begin(), oc.end(), [&](int ch) { return ch >= c.head_dim; }), oc.end());
}

// One candidate per value: c changed by set(candidate, value), refitted.
template <class T, class F>
Candidates each(const Case& c, const std::vector<T>& values, F set) {
    return shrink_each(c, values, [&set](Case& n, const T& v) {
        set(n, v);
        fit_recipe(n);
    });
}

template <class F>
Candidates one_if(bool applies, const Case& c, F set) {
    return shrink_one_if(applies, c, set);
}

// The case with only the sequences `keep`, in that order; specials follow
// their sequence.
Case with_sequences(const Case& c, const std::vector<int>& keep) {
    Case n = c;
    n.q_lens.clear();
    n.kv_lens.clear();
    for (int b : keep) {
        n.q_lens.push_back(c.q_lens[static_cast<std::size_t>(b)]);
        n.kv_lens.push_back(c.kv_lens[static_cast<std::size_t>(b)]);
    }
    n.data.specials.clear();
    for (SpecialValue s : c.data.specials) {
        const auto it = std::find(keep.begin(), keep.end(), s.seq);
        if (it == keep.end()) continue;
        s.seq = static_cast<int>(it - keep.begin());
        n.data.specials.push_back(s);
    }
    return n;
}

std::vector<int> sequence_range(int from, int to) {
    std::vector<int> v;
    for (int b = from; b < to; ++b) v.push_back(b);
    return v;
}

Candidates single_sequence(const Case& c) {
    Candidates out;
    if (c.batch() > 1)
        for (int b = 0; b < c.batch(); ++b) out.push_back(with_sequences(c, {b}));
    return out;
}

// Halves first (a bug that needs two particular sequences keeps them in
// few steps), then one sequence at a time. Batch 2 is single_sequence's.
Candidates drop_sequence(const Case& c) {
    Candidates out;
    const int n = c.batch();
    if (n < 3) return out;
    if (n >= 4) {
        out.push_back(with_sequences(c, sequence_range(0, n / 2)));
        out.push_back(with_sequences(c, sequence_range(n / 2, n)));
    }
    for (int b = 0; b < n; ++b) {
        std::vector<int> keep = sequence_range(0, n);
        keep.erase(keep.begin() + b);
        out.push_back(with_sequences(c, keep));
    }
    return out;
}

// Both lengths of a sequence cut by the same amount: the causal alignment
// (bottom-right, so it depends on kv_len - q_len) stays what it was.
Candidates lengths_together(const Case& c) {
    Candidates out;
    for (std::size_t b = 0; b < c.q_lens.size(); ++b) {
        const int m = std::min(c.q_lens[b], c.kv_lens[b]);
        const Candidates cs = each(c, shrink_values_below(m, 0), [b, m](Case& n, int v) {
            n.q_lens[b] -= m - v;
            n.kv_lens[b] -= m - v;
        });
        out.insert(out.end(), cs.begin(), cs.end());
    }
    return out;
}

Candidates shorter_lens(const Case& c, std::vector<int> Case::*lens) {
    Candidates out;
    for (std::size_t b = 0; b < (c.*lens).size(); ++b) {
        const Candidates cs = each(c, shorter((c.*lens)[b]), [b, lens](Case& n, int v) { (n.*lens)[b] = v; });
        out.insert(out.end(), cs.begin(), cs.end());
    }
    return out;
}

Candidates fewer_kv_heads(const Case& c) {
    const int ratio = c.n_q_heads / c.n_kv_heads;
    return each(c, shrink_values_below(c.n_kv_heads, 1), [ratio](Case& n, int kv) {
        n.n_kv_heads = kv;
        n.n_q_heads = kv * ratio;
    });
}

Candidates smaller_gqa_ratio(const Case& c) {
    return each(c, shrink_values_below(c.n_q_heads / c.n_kv_heads, 1),
                [](Case& n, int r) { n.n_q_heads = n.n_kv_heads * r; });
}

// Even head dims only, down to 2: odd and 1 are shapes real kernels rarely
// take, and a failure there says less about the real bug.
Candidates smaller_head_dim(const Case& c) {
    return each(c, shrink_even_values_below(c.head_dim), [](Case& n, int v) { n.head_dim = v; });
}

// All of a recipe list at once, then one element at a time.
template <class T>
Candidates drop_elements(const Case& c, std::vector<T> DataRecipe::*list) {
    const std::size_t n = (c.data.*list).size();
    Candidates out = one_if(n > 1, c, [list](Case& k) { (k.data.*list).clear(); });
    for (std::size_t i = 0; i < n; ++i) {
        Case k = c;
        (k.data.*list).erase((k.data.*list).begin() + static_cast<std::ptrdiff_t>(i));
        out.push_back(std::move(k));
    }
    return out;
}

// Recipe fields back to their default: all that differ at once, then each.
template <class T>
Candidates reset_fields(const Case& c, std::initializer_list<T DataRecipe::*> fields, T def) {
    std::vector<T DataRecipe::*> set;
    for (auto f : fields)
        if (!(c.data.*f == def)) set.push_back(f);
    Candidates out = one_if(set.size() > 1, c, [&](Case& k) {
        for (auto f : set) k.data.*f = def;
    });
    for (auto f : set) {
        Case k = c;
        k.data.*f = def;
        out.push_back(std::move(k));
    }
    return out;
}

// Each magnitude to 1, then halfway there in log space (rounded to three
// digits so the file stays readable); steps under 10% are not worth a run.
Candidates magnitudes_toward_one(const Case& c) {
    Candidates out;
    for (double DataRecipe::*f : {&DataRecipe::q_scale, &DataRecipe::k_scale, &DataRecipe::v_scale,
                                  &DataRecipe::outlier_factor, &DataRecipe::sink_factor}) {
        const double x = c.data.*f;
        if (x == 1.0) continue;
        std::vector<double> to{1.0};
        if (std::fabs(std::log(x)) > 0.2) to.push_back(std::stod(fmt::format("{:.3g}", std::sqrt(x))));
        const Candidates cs = each(c, to, [f](Case& n, double v) { n.data.*f = v; });
        out.insert(out.end(), cs.begin(), cs.end());
    }
    return out;
}

struct Reduction {
    const char* name;
    bool reshapes; // changes tensor sizes: never tried on explicit values
    Candidates (*candidates)(const Case&);
};

// Most drastic first: the shape (which decides the cost of every later
// run), then features, then the data recipe.
const Reduction kReductions[] = {
    {"single_sequence", true, single_sequence},
    {"drop_sequence", true, drop_sequence},
    {"lengths_together", true, lengths_together},
    {"kv_len", true, [](const Case& c) { return shorter_lens(c, &Case::kv_lens); }},
    {"q_len", true, [](const Case& c) { return shorter_lens(c, &Case::q_lens); }},
    {"kv_heads", true, fewer_kv_heads},
    {"gqa_ratio", true, smaller_gqa_ratio},
    {"head_dim", true, smaller_head_dim},
    {"drop_specials", false, [](const Case& c) { return drop_elements(c, &DataRecipe::specials); }},
    {"drop_outliers", false, [](const Case& c) { return drop_elements(c, &DataRecipe::outlier_channels); }},
    {"sink_tokens", false,
     [](const Case& c) {
         return each(c, shrink_values_below(c.data.sink_tokens, 0), [](Case& n, int v) { n.data.sink_tokens = v; });
     }},
    {"drop_bias", false,
     [](const Case& c) {
         return reset_fields(c, {&DataRecipe::q_bias, &DataRecipe::k_bias}, 0.0);
     }},
    {"drop_constant", false,
     [](const Case& c) {
         return reset_fields(c, {&DataRecipe::constant_q, &DataRecipe::constant_k, &DataRecipe::constant_v}, false);
     }},
    {"num_splits", false,
     [](const Case& c) {
         return each(c, shrink_values_below(c.num_splits, 1), [](Case& n, int v) { n.num_splits = v; });
     }},
    {"window_off", false, [](const Case& c) { return one_if(c.window > 0, c, [](Case& n) { n.window = 0; }); }},
    {"causal_off", false,
     [](const Case& c) {
         return one_if(c.causal, c, [](Case& n) {
             n.causal = false;
             n.window = 0; // a window needs causal
         });
     }},
    {"default_scale", false,
     [](const Case& c) { return one_if(c.scale.has_value(), c, [](Case& n) { n.scale.reset(); }); }},
    {"magnitudes", false, magnitudes_toward_one},
    {"seed_zero", false, [](const Case& c) { return one_if(c.data.seed != 0, c, [](Case& n) { n.data.seed = 0; }); }},
    {"dist_normal", false,
     [](const Case& c) { return one_if(c.data.dist != Dist::normal, c, [](Case& n) { n.data.dist = Dist::normal; }); }},
};

} // namespace

std::vector<std::string> shrink_reduction_names() {
    std::vector<std::string> out;
    for (const Reduction& r : kReductions) out.emplace_back(r.name);
    return out;
}

Case shrink_case(const Case& c, const std::function<bool(const Case&)>& still_fails, const ShrinkOptions& opt,
                 ShrinkStats* stats) {
    ShrinkStats local;
    const bool fixed_shape = c.values.has_value(); // explicit values fix the tensor sizes
    std::vector<ShrinkReduction<Case>> table;
    for (const Reduction& r : kReductions)
        if (!(fixed_shape && r.reshapes)) table.push_back({r.name, r.candidates});
    ShrinkRules<Case> rules;
    rules.valid = [&opt](const Case& k) {
        try {
            validate(k);
        } catch (const CaseError&) {
            return false;
        }
        return !opt.supported || opt.supported(k);
    };
    rules.key = [](const Case& k) { return case_to_json(k, -1); };
    rules.describe = case_shape_summary;
    rules.max_evaluations = opt.max_evaluations;
    return greedy_shrink(c, table, still_fails, rules, stats ? *stats : local);
}

Counterexample shrink_counterexample(Target& t, const Case& c, const std::string& gate_name, const ShrinkOptions& opt,
                                     ShrinkStats* stats) {
    const Gate* gate = find_gate(gate_name);
    if (!gate) throw std::invalid_argument(fmt::format("unknown gate '{}' (attncheck list shows them)", gate_name));
    // Gates after gate_name cannot change which one fails first: not run.
    std::vector<const Gate*> gates;
    for (const Gate* g : gate_pointers({})) {
        gates.push_back(g);
        if (g == gate) break;
    }
    ShrinkOptions o = opt;
    if (!o.supported) o.supported = [&t](const Case& k) { return t.unsupported(k).empty(); };
    if (!o.supported(c))
        throw std::invalid_argument(fmt::format("{} does not support the case{}", t.full_name(),
                                                t.unsupported(c).empty() ? "" : ": " + t.unsupported(c)));
    std::optional<CaseCheck> last; // the check of the last case that still failed: the one kept
    std::string first_failed;
    auto fails_first = [&](const Case& k) {
        CaseCheck chk = check_case(t, k, gates);
        const GateOutcome* f = chk.failure();
        first_failed = f ? f->gate->name : "";
        if (!f || f->gate != gate) return false;
        last = std::move(chk);
        return true;
    };
    if (!fails_first(c))
        throw std::invalid_argument(fmt::format(
            "the case does not fail gate {} first on {} ({})", gate_name, t.full_name(),
            first_failed.empty() ? "every gate up to it holds" : "gate " + first_failed + " fails before it"));
    ShrinkStats local;
    ShrinkStats& st = stats ? *stats : local;
    const Case shrunk = shrink_case(c, fails_first, o, &st);
    Counterexample ce = counterexample_of(t, shrunk, *last->failure());
    ce.shrink_steps = st.accepted;
    ce.shrink_trajectory.push_back(case_shape_summary(c));
    for (const ShrinkStep& s : st.steps)
        if (s.shape != ce.shrink_trajectory.back()) ce.shrink_trajectory.push_back(s.shape);
    return ce;
}

} // namespace attncheck
