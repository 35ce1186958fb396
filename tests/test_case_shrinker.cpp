// The greedy case shrinker (properties/campaign/case_shrinker.hpp): a
// synthetic failure shrinks to exactly the smallest case the reductions can
// reach, every case it keeps is valid, the evaluation budget holds, explicit
// values keep their sizes, and a real CPU mutant's large failing case
// shrinks to a smaller one that still fails the same gate first.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "engine/case/case_distribution.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/case_shrinker.hpp"
#include "properties/campaign/generators.hpp"

namespace attncheck {
namespace {

// A large case with every feature and recipe detail the reductions undo.
Case big_case() {
    Case c;
    c.q_lens = {5, 9, 3, 7};
    c.kv_lens = {200, 50, 120, 10};
    c.n_q_heads = 12;
    c.n_kv_heads = 4;
    c.head_dim = 64;
    c.causal = true;
    c.window = 16;
    c.num_splits = 4;
    c.scale = 0.3;
    c.dtype = DType::bf16;
    DataRecipe& r = c.data;
    r.dist = Dist::uniform;
    r.seed = 99;
    r.q_scale = 8;
    r.k_scale = 0.25;
    r.outlier_channels = {3, 60};
    r.outlier_factor = 10;
    r.sink_tokens = 4;
    r.sink_factor = 20;
    r.q_bias = 0.5;
    r.constant_v = true;
    r.specials.push_back({TensorId::q, 1, 2, 5, 7, std::numeric_limits<double>::quiet_NaN()});
    r.specials.push_back({TensorId::k, 0, 150, 3, 63, std::numeric_limits<double>::infinity()});
    validate(c);
    return c;
}

bool long_kv_and_heads_of_three(const Case& c) {
    bool long_kv = false;
    for (int l : c.kv_lens) long_kv = long_kv || l >= 37;
    return long_kv && c.n_q_heads % 3 == 0;
}

TEST(CaseShrinker, SyntheticFailureShrinksToTheMinimalCase) {
    const Case big = big_case();
    ASSERT_TRUE(long_kv_and_heads_of_three(big));
    ShrinkStats st;
    const Case s = shrink_case(big, long_kv_and_heads_of_three, {}, &st);

    Case want; // the smallest case that still fails, as the table can reach it
    want.q_lens = {0};
    want.kv_lens = {37};
    want.n_q_heads = 3;
    want.n_kv_heads = 1;
    want.head_dim = 2;
    want.dtype = DType::bf16; // never changed
    EXPECT_EQ(case_to_json(s), case_to_json(want));
    EXPECT_FALSE(st.budget_spent);
    EXPECT_EQ(st.accepted, static_cast<int>(st.steps.size()));
    EXPECT_LT(st.evaluations, 150) << "the binary search on lengths should keep the walk short";
    ASSERT_FALSE(st.steps.empty());
    EXPECT_EQ(st.steps.back().shape, case_shape_summary(s));
    const auto names = shrink_reduction_names();
    for (const ShrinkStep& step : st.steps)
        EXPECT_NE(std::find(names.begin(), names.end(), step.reduction), names.end()) << step.reduction;
}

TEST(CaseShrinker, EveryCaseItRunsIsValidAndSupported) {
    std::vector<Case> kept;
    int calls = 0;
    auto supported = [](const Case& c) { return c.head_dim >= 4; }; // a target's restriction
    auto fails = [&](const Case& c) {
        ++calls;
        EXPECT_NO_THROW(validate(c));
        EXPECT_GE(c.head_dim, 4) << "an unsupported case reached the predicate";
        const bool f = long_kv_and_heads_of_three(c);
        if (f) kept.push_back(c);
        return f;
    };
    ShrinkOptions opt;
    opt.supported = supported;
    ShrinkStats st;
    const Case s = shrink_case(big_case(), fails, opt, &st);
    EXPECT_EQ(calls, st.evaluations);
    ASSERT_EQ(static_cast<int>(kept.size()), st.accepted);
    for (std::size_t i = 0; i < kept.size(); ++i) {
        EXPECT_NO_THROW(validate(kept[i])) << "step " << i;
        EXPECT_EQ(case_shape_summary(kept[i]), st.steps[i].shape);
    }
    EXPECT_EQ(s.head_dim, 4);
    EXPECT_EQ(s.kv_lens, std::vector<int>{37});
}

TEST(CaseShrinker, EvaluationBudgetHolds) {
    for (int budget : {0, 1, 5, 20}) {
        int calls = 0;
        ShrinkOptions opt;
        opt.max_evaluations = budget;
        ShrinkStats st;
        const Case s = shrink_case(
            big_case(),
            [&](const Case& c) {
                ++calls;
                return long_kv_and_heads_of_three(c);
            },
            opt, &st);
        EXPECT_LE(calls, budget);
        EXPECT_EQ(calls, st.evaluations);
        EXPECT_TRUE(st.budget_spent) << "budget " << budget;
        EXPECT_TRUE(long_kv_and_heads_of_three(s)) << "what it returns still fails";
        if (budget == 0) {
            EXPECT_EQ(s, big_case());
        }
    }
}

TEST(CaseShrinker, ExplicitValuesKeepTheirSizes) {
    Case c;
    c.q_lens = {2};
    c.kv_lens = {3};
    c.n_q_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 4;
    c.causal = true;
    c.num_splits = 2;
    c.data.seed = 5;
    ExplicitValues v;
    for (int i = 0; i < 2 * 2 * 4; ++i) v.q.push_back(0.25 * i);
    for (int i = 0; i < 3 * 1 * 4; ++i) {
        v.k.push_back(-0.5 * i);
        v.v.push_back(1.0 + i);
    }
    c.values = v;
    c.data.specials.push_back({TensorId::v, 0, 1, 0, 2, std::numeric_limits<double>::quiet_NaN()});
    validate(c);
    const Case s = shrink_case(c, [](const Case& k) { return k.n_q_heads == 2; }, {});
    EXPECT_EQ(s.q_lens, c.q_lens);
    EXPECT_EQ(s.kv_lens, c.kv_lens);
    EXPECT_EQ(s.head_dim, 4);
    EXPECT_EQ(s.values, c.values);
    EXPECT_FALSE(s.causal);
    EXPECT_EQ(s.num_splits, 1);
    EXPECT_TRUE(s.data.specials.empty());
    EXPECT_NO_THROW(validate(s));
}

// A sizeable decode case that the scale_twice mutant fails.
Case sizeable_decode_case() {
    Case c;
    c.q_lens = {1, 1, 1};
    c.kv_lens = {97, 130, 64};
    c.n_q_heads = 8;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.num_splits = 3;
    c.data.seed = 12345;
    c.data.q_scale = 2;
    return c;
}

TEST(CaseShrinker, RealMutantShrinksAndStillFailsTheSameGate) {
    auto t = make_target("decode_split", Backend::cpu, Mutant::scale_twice);
    ASSERT_TRUE(t);
    const Case big = sizeable_decode_case();
    ASSERT_EQ(t->unsupported(big), "");
    const CaseCheck before = check_case(*t, big, gate_pointers({}));
    ASSERT_NE(before.failure(), nullptr) << "scale_twice passed the sizeable case";
    const std::string gate = before.failure()->gate->name;

    const Counterexample ce = shrink_counterexample(*t, big, gate);
    EXPECT_EQ(ce.gate, gate);
    EXPECT_EQ(ce.mutant, Mutant::scale_twice);
    EXPECT_GT(ce.shrink_steps, 0);
    EXPECT_LT(case_work(ce.kase), case_work(big));
    EXPECT_LT(ce.kase.batch(), big.batch());
    EXPECT_LT(ce.kase.n_q_heads, big.n_q_heads);
    ASSERT_GE(ce.shrink_trajectory.size(), 2u);
    EXPECT_EQ(ce.shrink_trajectory.front(), case_shape_summary(big));
    EXPECT_EQ(ce.shrink_trajectory.back(), case_shape_summary(ce.kase));
    EXPECT_FALSE(ce.report.empty());
    // What `attncheck repro` does: every gate, and the recorded one fails first.
    const CaseCheck after = check_case(*t, ce.kase, gate_pointers({}), /*stop_at_first=*/false);
    ASSERT_NE(after.failure(), nullptr);
    EXPECT_EQ(std::string(after.failure()->gate->name), gate);
}

TEST(CaseShrinker, ACaseThatPassesIsRefused) {
    auto t = make_target("decode_split", Backend::cpu, Mutant::none);
    ASSERT_TRUE(t);
    try {
        shrink_counterexample(*t, sizeable_decode_case(), "effective_scale");
        FAIL() << "a passing case was shrunk";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("does not fail"), std::string::npos) << e.what();
    }
    EXPECT_THROW(shrink_counterexample(*t, sizeable_decode_case(), "no_such_gate"), std::invalid_argument);
}

} // namespace
} // namespace attncheck
