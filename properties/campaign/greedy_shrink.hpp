// The greedy walk that both case shrinkers run (attention cases:
// case_shrinker.hpp; model cases: model_case_shrinker.hpp), written once so
// that they differ only in their tables of reductions.
//
// A reduction maps the current case to candidates, most drastic first. The
// walk keeps the first candidate that is valid, not tried before and still
// fails, then tries the same reduction again on the kept case; passes over
// the table repeat until one keeps nothing (a fixpoint: no single reduction
// applies) or the evaluation budget is spent. Limits: greedy, so the result
// is 1-minimal with respect to the table, not globally smallest; a candidate
// is known by a hash of its canonical text, so two distinct candidates whose
// texts collide count as one (the second is skipped, never misjudged as
// failing).
#pragma once

#include <functional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace attncheck {

struct ShrinkStep {
    std::string reduction; // the table's name for it ("kv_len", "drop_step", ...)
    std::string shape;     // the summary of the case kept
};

struct ShrinkStats {
    int evaluations = 0;       // still-fails calls
    int accepted = 0;          // candidates kept
    bool budget_spent = false; // stopped by the evaluation budget, not at a fixpoint
    std::vector<ShrinkStep> steps;
};

template <class T>
struct ShrinkReduction {
    const char* name;
    std::vector<T> (*candidates)(const T&);
};

// What the walk needs to know about T besides the table.
template <class T>
struct ShrinkRules {
    std::function<bool(const T&)> valid;           // validates (and the target takes it)
    std::function<std::string(const T&)> key;      // canonical text: equal cases, equal texts
    std::function<std::string(const T&)> describe; // ShrinkStep::shape
    int max_evaluations = 300;                     // calls of still_fails
};

// The smallest case the walk reaches from c (c itself when nothing smaller
// fails). c is assumed to fail; still_fails is called only on candidates.
// st is reset and filled.
template <class T>
T greedy_shrink(const T& c, const std::vector<ShrinkReduction<T>>& table,
                const std::function<bool(const T&)>& still_fails, const ShrinkRules<T>& rules, ShrinkStats& st) {
    st = ShrinkStats{};
    T cur = c;
    // Candidates already run, and the start: after a kept step the walk comes
    // back to reductions that may offer the same candidate again.
    std::unordered_set<std::size_t> tried{std::hash<std::string>{}(rules.key(c))};
    auto fails = [&](const T& cand) {
        if (!rules.valid(cand)) return false;
        if (!tried.insert(std::hash<std::string>{}(rules.key(cand))).second) return false;
        if (st.evaluations >= rules.max_evaluations) {
            st.budget_spent = true;
            return false;
        }
        ++st.evaluations;
        return still_fails(cand);
    };
    // The first candidate of r that still fails becomes the current case.
    auto step = [&](const ShrinkReduction<T>& r) {
        for (T& cand : r.candidates(cur)) {
            if (!fails(cand)) {
                if (st.budget_spent) return false;
                continue;
            }
            cur = std::move(cand);
            ++st.accepted;
            st.steps.push_back({r.name, rules.describe(cur)});
            return true;
        }
        return false;
    };
    for (bool kept = true; kept && !st.budget_spent;) {
        kept = false;
        for (const ShrinkReduction<T>& r : table) {
            while (step(r)) kept = true;
            if (st.budget_spent) break;
        }
    }
    return cur;
}

// Values below x down to lo, most drastic first: lo, then x - (x-lo)/2,
// x - (x-lo)/4, ..., x - 1. Kept one after another, they binary-search the
// smallest value that still fails in O(log x) steps, not x.
inline std::vector<int> shrink_values_below(int x, int lo) {
    std::vector<int> out;
    for (int d = x - lo; d >= 1; d /= 2) out.push_back(x - d);
    return out;
}

// Even values below d down to 2 (2, about half, d - 2): head dims that real
// kernels take, and RoPE needs channel pairs.
inline std::vector<int> shrink_even_values_below(int d) {
    std::vector<int> dims;
    for (int v : {2, (d / 2) & ~1, d - 2, d - 1})
        if (v >= 2 && v < d && v % 2 == 0 && (dims.empty() || dims.back() != v)) dims.push_back(v);
    return dims;
}

// One candidate per value: c changed by set(candidate, value).
template <class T, class V, class F>
std::vector<T> shrink_each(const T& c, const std::vector<V>& values, F set) {
    std::vector<T> out;
    for (const V& v : values) {
        T n = c;
        set(n, v);
        out.push_back(std::move(n));
    }
    return out;
}

template <class T, class F>
std::vector<T> shrink_one_if(bool applies, const T& c, F set) {
    if (!applies) return {};
    T n = c;
    set(n);
    return {n};
}

} // namespace attncheck
