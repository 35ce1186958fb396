// The mutation score as a test: every mutant build of every target that
// carries it must be killed by some gate within the budget, and its shrunk
// counterexample must be no bigger than the bug needs. Built for the CPU
// (label cpu) and, with ATTNCHECK_TEST_CUDA, for CUDA (label gpu; CUDA
// mutants are built for fp16 only, and flash_prefill's for head dim 64).
#include <gtest/gtest.h>

#include <algorithm>

#include <fmt/format.h>

#include "kernels/registry.hpp"
#include "properties/campaign/mutation_score.hpp"
#include "tests/backend_under_test.hpp"

using namespace attncheck;

TEST(MutationScore, EveryMutantIsKilledWithASmallCase) {
    ATTNCHECK_REQUIRE_BACKEND();
    MutationOptions mo;
    mo.backend = test_backend();
    mo.cases = 400;
    mo.seconds = 60;
    const auto rows = run_mutation_score(mo);
    fmt::print("{}", mutation_table(rows));
    ASSERT_FALSE(rows.empty());
    std::vector<Mutant> seen;
    for (const auto& r : rows) {
        const std::string id = fmt::format("{}/{}+{}", backend_name(r.backend), r.target, mutant_name(r.mutant));
        seen.push_back(r.mutant);
        EXPECT_TRUE(r.killed) << id << " survived: " << r.note;
        if (!r.killed || !r.shrunk) continue;
        const Case& c = r.shrunk->kase;
        const auto target = make_target(r.target, r.backend, r.mutant);
        const Capabilities caps = probe_capabilities(*target);
        const int smallest_d = caps.head_dims.at(c.dtype).front();
        const int longest = std::max(*std::max_element(c.q_lens.begin(), c.q_lens.end()),
                                     *std::max_element(c.kv_lens.begin(), c.kv_lens.end()));
        // No bigger than the bug needs: one or two sequences, at most 4 q
        // heads, tile-sized lengths (an online-softmax rescale needs a second
        // tile), and the smallest head dim except where channels matter or
        // (online_no_rescale: the failure needs a new row max in a later
        // tile, which greedy shrinking reaches from few directions) the
        // shrinker stops at a local minimum.
        EXPECT_LE(c.batch(), 2) << id;
        EXPECT_LE(c.n_q_heads, 4) << id;
        EXPECT_LE(longest, 140) << id;
        if (r.mutant != Mutant::partial_q_load && r.mutant != Mutant::scale_missing &&
            r.mutant != Mutant::scale_twice && r.mutant != Mutant::fp16_accumulation &&
            r.mutant != Mutant::online_no_rescale) {
            EXPECT_LE(c.head_dim, std::max(smallest_d, 2)) << id;
        }
        if (r.mutant == Mutant::gqa_map_mod) {
            EXPECT_EQ(c.n_kv_heads, 2) << id << ": a wrong GQA map needs 2 kv heads";
            EXPECT_EQ(c.n_q_heads / c.n_kv_heads, 2) << id << ": and a group of 2";
        }
    }
    // Every mutant that applies to the backend was run on some target.
    for (const auto& mi : all_mutants()) {
        if (mi.cuda_only() && test_backend() == Backend::cpu) continue;
        EXPECT_NE(std::find(seen.begin(), seen.end(), mi.id), seen.end()) << mi.name << " was not run on any target";
    }
}
