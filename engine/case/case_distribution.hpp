// The one distribution of generated cases: every axis of a Case (head
// counts, head dim, lengths, batch, dtype, mask, splits, the data recipe) as
// a list of alternatives with weights, simplest first. Three consumers draw
// from it through a Chooser: the RapidCheck generators (gen_case, whose
// draws shrink), the libFuzzer case builder (a byte stream) and the seeded
// sampler (sample_wide_case: the error-model sweep, `attncheck selfcheck`).
// `attncheck list --distribution` prints it.
//
// A weighted choice draws one integer u in [0, total weight) and maps it
// through the cumulative weights, so a smaller u never gives a later
// alternative: RapidCheck shrinks u toward 0 and with it the case toward the
// first (simplest) alternative of every axis, and its size parameter, which
// bounds u, makes early cases simple. A Chooser that always answers its
// lower bound draws the simplest case of all.
//
// Consumers narrow the table without reweighting it: a CaseFilter (what a
// target runs: dtypes, head dims, one query per sequence) and DrawLimits
// (lengths, heads, batch, work) drop the alternatives outside them, and the
// rest keep their weights. Every drawn case is valid by construction:
// magnitudes are refitted to the dtype and lengths halved until the work
// fits, the same way for a case and for each of its shrunk candidates.
#pragma once

#include <climits>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/rng.hpp"

namespace attncheck {

// Where the choices come from. range() returns a value in [lo, hi), hi > lo;
// returning lo everywhere gives the simplest case.
class Chooser {
public:
    virtual ~Chooser() = default;
    virtual long long range(long long lo, long long hi) = 0;
};

// Choices from a seed: case i of a sweep is reproducible on its own.
class SeededChooser final : public Chooser {
public:
    explicit SeededChooser(std::uint64_t seed) : r_(seed) {}
    long long range(long long lo, long long hi) override {
        return lo + static_cast<long long>(r_.below(static_cast<std::uint64_t>(hi - lo)));
    }

private:
    Rng r_;
};

// ---- the kinds of alternative an axis holds

struct HeadPair {
    int q, kv;
};

// Lengths and counts: uniform in [lo, hi]; hi may be a limit of DrawLimits.
struct IntRange {
    static constexpr int kMaxLen = INT_MAX;       // DrawLimits::max_len
    static constexpr int kMaxCache = INT_MAX - 1; // DrawLimits::max_decode_len, decode steps only
    int lo, hi;
};

enum class QLen { one, own, empty, same_as_kv };
enum class Mask { none, causal, causal_window };
enum class Jitter { none, spread };
enum class Outliers { none, first, last, first_and_last, any_one };
enum class Ties { none, k, v };
enum class Special { none, nan, pos_inf, neg_inf };

template <class T>
struct Alt {
    T value;
    int weight;
    const char* note = ""; // for enums the whole label
};

template <class T>
struct Axis {
    const char* what;
    std::vector<Alt<T>> alts;
};

// X(type, name): the axes, in the order a case draws them. Their
// alternatives are in case_distribution.cpp.
#define ATTNCHECK_CASE_AXES(X)      \
    X(DType, dtype)                 \
    X(int, head_dim)                \
    X(HeadPair, heads)              \
    X(int, batch)                   \
    X(QLen, q_len)                  \
    X(IntRange, length)             \
    X(Mask, mask)                   \
    X(IntRange, window)             \
    X(IntRange, splits)             \
    X(std::optional<double>, scale) \
    X(Dist, dist)                   \
    X(double, logit_level)          \
    X(double, k_skew)               \
    X(double, v_scale)              \
    X(Jitter, jitter)               \
    X(Outliers, outliers)           \
    X(double, outlier_factor)       \
    X(IntRange, sink_tokens)        \
    X(double, sink_factor)          \
    X(double, k_bias)               \
    X(double, q_bias)               \
    X(Ties, ties)                   \
    X(Special, special)             \
    X(int, page_size)

struct CaseDistribution {
#define ATTNCHECK_AXIS_MEMBER(type, name) Axis<type> name;
    ATTNCHECK_CASE_AXES(ATTNCHECK_AXIS_MEMBER)
#undef ATTNCHECK_AXIS_MEMBER
};

const CaseDistribution& case_distribution();

// What the consumer runs (a target's probed capabilities, in engine terms).
struct CaseFilter {
    bool decode_only = false; // at most one query per sequence
    bool paged_kv = false;    // reads a paged KV cache (Case.page_size > 0); else contiguous only
    // The dtypes allowed, each with its head dims; empty: the whole table.
    // Dims the table lacks are added with weight 1 after its own.
    std::map<DType, std::vector<int>> head_dims;
};

struct DrawLimits {
    int max_batch = 3;
    int max_len = 130;         // prefill lengths (tile edges up to 129)
    int max_decode_len = 2100; // KV caches of decode steps (q_len <= 1)
    int max_q_heads = 1024;
    long long max_work = 300000; // sum over sequences of max(q_len,1) * max(kv_len,1) * n_q_heads * head_dim
};

// One valid Case from a sequence of choices.
Case draw_case(const CaseFilter& f, const DrawLimits& lim, Chooser& ch);

// DrawLimits::max_work of a case, and the cap: halves the longest length
// until the work fits (deterministic, so a shrunk candidate is capped the
// same way).
long long case_work(const Case& c);
void cap_case_work(Case& c, long long max_work);

// The table as printed: one row per alternative, share of its axis in %.
struct DistributionRow {
    std::string axis, alternative;
    int weight;
    double share;
};
std::vector<DistributionRow> case_distribution_rows();
std::string case_distribution_table();

} // namespace attncheck
