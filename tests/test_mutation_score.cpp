// The mutation score as a test: every mutant build of every target that
// carries it must be killed within the budget by the gate the catalogue
// expects (engine/targets/mutant.hpp), so that the gate that fails keeps
// naming the bug, and its shrunk counterexample must be no bigger than the
// bug needs. Built for the CPU (label cpu) and, with ATTNCHECK_TEST_CUDA, for
// CUDA (label gpu; CUDA mutants are built for fp16 only, and flash_prefill's
// for head dim 64).
#include <gtest/gtest.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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
    EXPECT_TRUE(mutation_score_holds(rows));
    std::vector<Mutant> seen;
    for (const auto& r : rows) {
        const std::string id = fmt::format("{}/{}+{}", backend_name(r.backend), r.target, mutant_name(r.mutant));
        seen.push_back(r.mutant);
        EXPECT_TRUE(r.killed) << id << " survived: " << r.note;
        if (!r.killed || !r.shrunk) continue;
        const MutantInfo* info = mutant_info(r.mutant);
        ASSERT_NE(info, nullptr) << id;
        EXPECT_TRUE(gate_expected_for(r.mutant, r.gate))
            << id << " killed by gate " << r.gate << ", the catalogue expects " << info->expected_gate
            << (*info->also_gate ? fmt::format(" or {}", fmt::join(also_gates(*info), " or ")) : std::string())
            << "; shrunk case " << case_shape_summary(r.shrunk->kase) << ": " << r.shrunk->summary;
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

// A kill by a gate the catalogue does not list for the mutant fails the
// score, and the table and JSON say so, without running any campaign.
TEST(MutationScore, AKillByAnUnexpectedGateFailsTheScore) {
    MutantRow expected;
    expected.mutant = Mutant::scale_twice;
    expected.target = "decode";
    expected.killed = true;
    expected.gate = "effective_scale";
    MutantRow unexpected = expected;
    unexpected.gate = "parity";
    EXPECT_TRUE(expected.killed_as_expected());
    EXPECT_FALSE(unexpected.killed_as_expected());
    EXPECT_TRUE(mutation_score_holds({expected}));
    EXPECT_FALSE(mutation_score_holds({expected, unexpected}));
    EXPECT_FALSE(mutation_score_holds({}));

    const std::string table = mutation_table({expected, unexpected});
    EXPECT_NE(table.find("KILLED (UNEXPECTED GATE)"), std::string::npos) << table;
    EXPECT_NE(table.find("1 of 2 killed by the expected gate; 1 killed by an unexpected gate; 0 survived"),
              std::string::npos)
        << table;

    const auto rows = nlohmann::json::parse(mutation_json({expected, unexpected}));
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["bug_class"], "scale");
    EXPECT_EQ(rows[0]["expected_gate"], "effective_scale");
    EXPECT_FALSE(rows[0].contains("also_gate"));
    EXPECT_EQ(rows[0]["gate_as_expected"], true);
    EXPECT_EQ(rows[1]["gate"], "parity");
    EXPECT_EQ(rows[1]["gate_as_expected"], false);

    // Every gate of a list of other gates counts; the JSON lists them.
    MutantRow other = expected;
    other.mutant = Mutant::fp16_accumulation;
    other.gate = "effective_scale";
    EXPECT_TRUE(other.killed_as_expected());
    other.gate = "causal";
    EXPECT_FALSE(other.killed_as_expected());
    const auto fp16 = nlohmann::json::parse(mutation_json({other}));
    EXPECT_EQ(fp16[0]["also_gate"], nlohmann::json({"parity", "effective_scale"}));
}
