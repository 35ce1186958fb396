// The one case distribution: its table is well formed (positive weights,
// simplest first), the lower-bound chooser draws the simplest case through
// every consumer, the seeded sampler's frequencies follow the table's
// shares, and what it draws is valid.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/case/case_distribution.hpp"
#include "engine/case/case_sampler.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/generators.hpp"

using namespace attncheck;

namespace {

// Always the lower bound: the simplest alternative of every choice.
class LowestChooser final : public Chooser {
public:
    long long range(long long lo, long long) override { return lo; }
};

// Answers a fixed u (clamped to the range).
class FixedChooser final : public Chooser {
public:
    explicit FixedChooser(long long u) : u_(u) {}
    long long range(long long lo, long long hi) override { return std::clamp(u_, lo, hi - 1); }

private:
    long long u_;
};

void expect_simplest(const Case& c, int smallest_head_dim, const std::string& who) {
    SCOPED_TRACE(who);
    EXPECT_EQ(c.dtype, DType::f32);
    EXPECT_EQ(c.head_dim, smallest_head_dim);
    EXPECT_EQ(c.n_q_heads, 1);
    EXPECT_EQ(c.n_kv_heads, 1);
    EXPECT_EQ(c.q_lens, std::vector<int>{1});
    EXPECT_EQ(c.kv_lens, std::vector<int>{0});
    EXPECT_FALSE(c.causal);
    EXPECT_EQ(c.window, 0);
    EXPECT_EQ(c.num_splits, 1);
    EXPECT_FALSE(c.scale.has_value());
    const DataRecipe& d = c.data;
    EXPECT_EQ(d.dist, Dist::sparse_int);
    EXPECT_EQ(d.seed, 0u);
    EXPECT_DOUBLE_EQ(d.q_scale * d.k_scale, 1.0 / 3.0); // logits of order 1
    EXPECT_DOUBLE_EQ(d.q_scale, d.k_scale);
    EXPECT_DOUBLE_EQ(d.v_scale, 1.0);
    EXPECT_TRUE(d.outlier_channels.empty());
    EXPECT_EQ(d.sink_tokens, 0);
    EXPECT_EQ(d.q_bias, 0.0);
    EXPECT_EQ(d.k_bias, 0.0);
    EXPECT_FALSE(d.constant_k || d.constant_v);
    EXPECT_TRUE(d.specials.empty());
}

template <class T>
double share_of(const Axis<T>& axis, T v) {
    long long total = 0, w = 0;
    for (const auto& a : axis.alts) {
        total += a.weight;
        if (a.value == v) w += a.weight;
    }
    return static_cast<double>(w) / static_cast<double>(total);
}

} // namespace

TEST(CaseDistribution, EveryAxisHasPositiveWeights) {
    const auto rows = case_distribution_rows();
    ASSERT_FALSE(rows.empty());
    std::map<std::string, double> shares;
    for (const auto& r : rows) {
        EXPECT_GT(r.weight, 0) << r.axis << ": " << r.alternative;
        EXPECT_FALSE(r.alternative.empty()) << r.axis;
        shares[r.axis] += r.share;
    }
    for (const auto& [axis, total] : shares) EXPECT_NEAR(total, 100.0, 1e-9) << axis;
    const std::string table = case_distribution_table();
    for (const char* axis : {"heads", "head_dim", "length", "logit_level", "special"})
        EXPECT_NE(table.find(axis), std::string::npos) << axis;
}

TEST(CaseDistribution, SimplestAlternativeComesFirst) {
    const CaseDistribution& D = case_distribution();
    EXPECT_EQ(D.dtype.alts.front().value, DType::f32);
    EXPECT_TRUE(std::is_sorted(D.head_dim.alts.begin(), D.head_dim.alts.end(),
                               [](const auto& a, const auto& b) { return a.value < b.value; }));
    for (const auto& a : D.heads.alts) {
        EXPECT_EQ(a.value.q % a.value.kv, 0) << a.value.q << "/" << a.value.kv;
        EXPECT_GE(a.value.q, D.heads.alts.front().value.q);
    }
    EXPECT_EQ(D.heads.alts.front().value.q, 1);
    EXPECT_EQ(D.batch.alts.front().value, 1);
    EXPECT_EQ(D.q_len.alts.front().value, QLen::one);
    for (const Axis<IntRange>* ax : {&D.length, &D.window, &D.splits, &D.sink_tokens})
        for (const auto& a : ax->alts) EXPECT_LE(ax->alts.front().value.lo, a.value.lo) << ax->what;
    EXPECT_EQ(D.length.alts.front().value.hi, 0);
    EXPECT_EQ(D.splits.alts.front().value.hi, 1);
    EXPECT_EQ(D.sink_tokens.alts.front().value.hi, 0);
    EXPECT_EQ(D.mask.alts.front().value, Mask::none);
    EXPECT_FALSE(D.scale.alts.front().value.has_value());
    EXPECT_EQ(D.dist.alts.front().value, Dist::sparse_int);
    EXPECT_EQ(D.logit_level.alts.front().value, 1.0);
    EXPECT_EQ(D.k_skew.alts.front().value, 1.0);
    EXPECT_EQ(D.v_scale.alts.front().value, 1.0);
    EXPECT_EQ(D.jitter.alts.front().value, Jitter::none);
    EXPECT_EQ(D.outliers.alts.front().value, Outliers::none);
    for (const Axis<double>* ax : {&D.outlier_factor, &D.sink_factor, &D.k_bias, &D.q_bias})
        for (const auto& a : ax->alts) EXPECT_LE(ax->alts.front().value, a.value) << ax->what;
    EXPECT_EQ(D.ties.alts.front().value, Ties::none);
    EXPECT_EQ(D.special.alts.front().value, Special::none);
}

// Every head dim a target may be probed for is in the table with its own
// weight (the filter would otherwise add it with weight 1).
TEST(CaseDistribution, CoversTheProbedHeadDims) {
    const auto& alts = case_distribution().head_dim.alts;
    for (int d : candidate_head_dims())
        EXPECT_TRUE(std::any_of(alts.begin(), alts.end(), [d](const auto& a) { return a.value == d; })) << d;
}

// A larger u never picks an earlier alternative, so shrinking u toward 0
// moves every choice toward the first alternative.
TEST(CaseDistribution, LargerDrawsNeverGiveEarlierAlternatives) {
    const auto& heads = case_distribution().heads.alts;
    long long total = 0;
    for (const auto& a : heads) total += a.weight;
    long long prev = 0;
    std::map<long long, long long> drawn; // alternative -> how many u gave it
    for (long long u = 0; u < total; ++u) {
        FixedChooser ch(u);
        const Case c = draw_case({}, {}, ch);
        const auto it = std::find_if(heads.begin(), heads.end(), [&](const auto& a) {
            return a.value.q == c.n_q_heads && a.value.kv == c.n_kv_heads;
        });
        ASSERT_NE(it, heads.end());
        const long long idx = it - heads.begin();
        EXPECT_GE(idx, prev) << "u " << u;
        prev = idx;
        ++drawn[idx];
    }
    // Each alternative is drawn by exactly as many u as its weight.
    for (size_t i = 0; i < heads.size(); ++i) EXPECT_EQ(drawn[static_cast<long long>(i)], heads[i].weight) << i;
}

TEST(CaseDistribution, LowerBoundChooserDrawsTheSimplestCase) {
    LowestChooser ch;
    expect_simplest(draw_case({}, {}, ch), 1, "draw_case, no filter");
    // Through the generators, for every CPU target: the smallest head dim
    // it runs, and one query against an empty cache.
    for (const auto& t : make_targets(Backend::cpu)) {
        const Capabilities caps = probe_capabilities(*t);
        ASSERT_FALSE(caps.empty()) << t->full_name();
        LowestChooser low;
        const Case c = build_case(caps, {}, low);
        expect_simplest(c, caps.head_dims.at(DType::f32).front(), "build_case for " + t->full_name());
        EXPECT_TRUE(t->unsupported(c).empty()) << t->full_name() << ": " << t->unsupported(c);
    }
}

TEST(CaseDistribution, TargetsFilterTheTable) {
    CaseFilter f;
    f.decode_only = true;
    f.head_dims[DType::f16] = {64, 128};
    f.head_dims[DType::bf16] = {40}; // not in the table: added with weight 1
    std::map<int, int> dims;
    for (std::uint64_t seed = 0; seed < 500; ++seed) {
        SeededChooser ch(seed);
        const Case c = draw_case(f, {}, ch);
        ASSERT_NE(c.dtype, DType::f32);
        for (int q : c.q_lens) ASSERT_LE(q, 1);
        ++dims[c.head_dim];
        if (c.dtype == DType::bf16) {
            ASSERT_EQ(c.head_dim, 40);
        }
    }
    EXPECT_EQ(dims.size(), 3u);
}

TEST(CaseDistribution, SamplerFollowsTheTablesShares) {
    const CaseDistribution& D = case_distribution();
    const int n = 4000;
    std::map<DType, int> dtype;
    std::map<Mask, int> mask;
    std::map<Dist, int> dist;
    for (int i = 0; i < n; ++i) {
        const Case c = sample_wide_case(static_cast<std::uint64_t>(i));
        ++dtype[c.dtype];
        ++mask[!c.causal ? Mask::none : c.window > 0 ? Mask::causal_window : Mask::causal];
        ++dist[c.data.dist];
    }
    // Within 4 standard deviations of a binomial share.
    auto expect_share = [&](const char* what, int count, double p) {
        const double sd = std::sqrt(p * (1 - p) / n);
        EXPECT_NEAR(static_cast<double>(count) / n, p, 4 * sd) << what;
    };
    for (const auto& a : D.dtype.alts) expect_share(dtype_name(a.value), dtype[a.value], share_of(D.dtype, a.value));
    for (const auto& a : D.mask.alts) expect_share(a.note, mask[a.value], share_of(D.mask, a.value));
    for (const auto& a : D.dist.alts) expect_share(dist_name(a.value), dist[a.value], share_of(D.dist, a.value));
}

TEST(CaseDistribution, SampledCasesAreValidAndVaried) {
    const SamplerLimits lim;
    int same = 0, shorter = 0, longer = 0, decode = 0, long_cache = 0, specials = 0, gqa = 0, empty = 0;
    for (std::uint64_t seed = 0; seed < 3000; ++seed) {
        const Case c = sample_wide_case(seed);
        ASSERT_NO_THROW(validate(c)) << case_to_json(c);
        ASSERT_LE(c.n_q_heads, lim.max_q_heads);
        long long work = 0;
        for (int s = 0; s < c.batch(); ++s) {
            const int q = c.q_lens[s], kv = c.kv_lens[s];
            ASSERT_LE(kv, lim.max_kv_len);
            work += static_cast<long long>(std::max(q, 1)) * std::max(kv, 1) * c.n_q_heads * c.head_dim;
            same += q == kv;
            shorter += q < kv && q > 1;
            longer += q > kv;
            decode += q == 1;
            empty += q == 0 || kv == 0;
            long_cache += kv > lim.max_len;
        }
        ASSERT_LE(work, lim.max_work) << case_to_json(c);
        specials += !c.data.specials.empty();
        gqa += c.n_q_heads > c.n_kv_heads;
    }
    // q_len = kv_len is never the only shape; every kind shows up.
    EXPECT_GT(shorter, same / 4);
    EXPECT_GT(longer, 100);
    EXPECT_GT(decode, 500);
    EXPECT_GT(empty, 50);
    EXPECT_GT(long_cache, 20);
    EXPECT_GT(specials, 50);
    EXPECT_GT(gqa, 1500);
}
