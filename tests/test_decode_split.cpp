// decode_split's two phase-1 paths and its split heuristic. On CUDA, decode
// shapes at head_dim 64 and 128 in fp16/bf16 run the grouped kernel
// (kernels/decode_split/decode_split_grouped.cuh); these tests aim cases at
// it: groups larger than one block's rows, caches many pipeline stages
// long, ragged and empty sequences, and every mutant the family carries, each
// of which must still show on a decode shape. The same cases run on the CPU
// twin (label cpu), which the grouped kernel mirrors.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"
#include "kernels/decode_split/decode_split.hpp"
#include "kernels/registry.hpp"
#include "oracle/parity.hpp"
#include "oracle/reference_attention.hpp"
#include "tests/backend_under_test.hpp"

using namespace attncheck;
using kernels::decode_split_detail::heuristic_splits;
using kernels::decode_split_detail::kMinSplitKeys;

namespace {

Case decode_case(int hq, int hkv, int d, std::vector<int> kv, DType t, int splits, std::uint64_t seed) {
    Case c;
    c.n_q_heads = hq;
    c.n_kv_heads = hkv;
    c.head_dim = d;
    c.q_lens.assign(kv.size(), 1);
    c.kv_lens = std::move(kv);
    c.dtype = t;
    c.num_splits = splits;
    c.data.seed = seed;
    return c;
}

// Decode shapes for the grouped path: one block's rows (8) exceeded (16/1,
// 64/2), a group of one, Qwen's 7; caches of 1 to 40+ tiles (the ring of 4
// stages wraps), splits from 1 to more than keys, q_len 0 neighbours.
std::vector<Case> grouped_cases() {
    std::vector<Case> v;
    std::uint64_t seed = 900;
    for (DType t : {DType::f16, DType::bf16})
        for (int d : {64, 128}) {
            v.push_back(decode_case(16, 1, d, {1000}, t, 3, seed++));
            v.push_back(decode_case(64, 2, d, {257, 31}, t, 2, seed++));
            v.push_back(decode_case(4, 4, d, {300}, t, 1, seed++));
            v.push_back(decode_case(14, 2, d, {1300, 0, 97}, t, 5, seed++));
            Case r = decode_case(8, 2, d, {200, 5, 33}, t, 9, seed++);
            r.q_lens = {1, 0, 1};
            r.causal = true;
            r.window = 70;
            v.push_back(r);
        }
    return v;
}

} // namespace

TEST(DecodeSplitHeuristic, FillsOneWaveWithinKeyLimits) {
    // 8 blocks a split, 396 resident slots (132 SMs x 3): 49 splits fill one wave.
    EXPECT_EQ(heuristic_splits(8, 32768, 396), 49);
    // ...but never fewer than kMinSplitKeys keys a split.
    EXPECT_EQ(heuristic_splits(8, 4096, 396), 4096 / kMinSplitKeys);
    // 512 blocks in 396 slots: 1.3 waves, the last nearly empty; 3 splits
    // make 3.9 waves of shorter blocks.
    EXPECT_EQ(heuristic_splits(512, 4096, 396), 3);
    EXPECT_EQ(heuristic_splits(128, 8192, 396), 3);
    // A batch of whole waves keeps one split; so does a short cache.
    EXPECT_EQ(heuristic_splits(396, 4096, 396), 1);
    EXPECT_EQ(heuristic_splits(8, kMinSplitKeys - 1, 396), 1);
    // Degenerate inputs still give a usable count.
    EXPECT_EQ(heuristic_splits(0, 4096, 396), 1);
    EXPECT_EQ(heuristic_splits(8, 4096, 0), 1);
    EXPECT_EQ(heuristic_splits(8, 0, 396), 1);
}

TEST(DecodeSplitGrouped, MatchesOracleUnderErrorModel) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto target = make_target("decode_split", kBackend);
    int ran = 0;
    for (const Case& c : grouped_cases()) {
        ASSERT_EQ(target->unsupported(c), "");
        const AttentionProblem p = materialize(c);
        const Observation obs = target->run(p);
        const ParityReport rep = check_parity(p, reference_attention<double>(p), obs, target->profile(c));
        EXPECT_TRUE(rep.pass()) << rep.summary() << "\n  case: " << case_to_json(c, -1);
        ++ran;
    }
    EXPECT_EQ(ran, static_cast<int>(grouped_cases().size()));
}

namespace {

// Decode-shaped cases (fp16, head_dim 64, one query per sequence: the
// grouped path's mutant builds) that expose each mutant decode_split carries.
std::vector<Case> grouped_mutant_cases() {
    std::vector<Case> v;
    v.push_back(decode_case(4, 2, 64, {40}, DType::f16, 1, 51));
    Case causal = decode_case(4, 2, 64, {3, 200}, DType::f16, 2, 52);
    causal.causal = true;
    v.push_back(causal);
    Case big = decode_case(4, 2, 64, {90}, DType::f16, 2, 53); // logits far above 88
    big.data.q_scale = big.data.k_scale = 6.0;
    v.push_back(big);
    Case lng = decode_case(2, 1, 64, {1500, 1500}, DType::f16, 1, 54); // long rows, positive V offsets
    lng.data.v_scale = 8.0;
    lng.data.sink_tokens = 1;
    v.push_back(lng);
    v.push_back(decode_case(4, 2, 64, {3, 70}, DType::f16, 7, 55));   // more splits than keys
    Case paged = decode_case(4, 2, 64, {40, 300}, DType::f16, 2, 57); // pages of 16 and 5
    paged.page_size = 16;
    paged.page_seed = 3;
    v.push_back(paged);
    paged.page_size = 5;
    v.push_back(paged);
    // Visible keys with logits of -11250 (one channel of 300 against -300,
    // scale 1/8) and a window hiding the rest: a finite sentinel (-1e4)
    // outranks them, -inf never does.
    Case sent = decode_case(1, 1, 64, {8}, DType::f16, 1, 56);
    sent.causal = true;
    sent.window = 2;
    std::vector<double> q(64, 0.0);
    q[0] = 300.0;
    sent.values = ExplicitValues{q, {}, {}};
    for (int j = 0; j < 8; ++j)
        for (int ch = 0; ch < 64; ++ch) {
            sent.values->k.push_back(ch == 0 ? -300.0 : 0.0);
            sent.values->v.push_back(ch % 2 ? -j : j);
        }
    v.push_back(sent);
    return v;
}

} // namespace

TEST(DecodeSplitGrouped, EveryCarriedMutantShowsOnDecodeShapes) {
    ATTNCHECK_REQUIRE_BACKEND();
    const auto cases = grouped_mutant_cases();
    int mutants = 0;
    for (const MutantInfo& mi : all_mutants()) {
        auto target = make_target("decode_split", kBackend, mi.id);
        int supported = 0, caught = 0;
        for (const Case& c : cases) {
            if (!target->unsupported(c).empty()) continue;
            ++supported;
            const AttentionProblem p = materialize(c);
            try {
                const Observation obs = target->run(p);
                caught += !check_parity(p, reference_attention<double>(p), obs, target->profile(c)).pass();
            } catch (const std::exception&) {
                ++caught; // a crash or guard-band violation is visible too
            }
        }
        if (supported == 0) continue; // not carried by decode_split on this backend
        ++mutants;
        std::printf("%s on decode shapes: changes %d of %d cases\n", target->full_name().c_str(), caught, supported);
        EXPECT_GE(caught, 1) << target->full_name() << " is invisible on decode shapes";
    }
    EXPECT_GE(mutants, 12) << "decode_split carries the every-family, online and split mutants";
}

#ifdef ATTNCHECK_TEST_CUDA
TEST(DecodeSplitHeuristic, DeviceCountsForAnchorShapes) {
    ATTNCHECK_REQUIRE_BACKEND();
    // B1 L32768, 32/8 d128 fp16: eight blocks a split cannot fill an H200
    // (or any GPU of more than 8 SMs) without splits.
    Case c = decode_case(32, 8, 128, {32768}, DType::f16, 1, 1);
    const int s = kernels::decode_split_cuda_splits(problem_shape(c));
    EXPECT_GT(s, 8);
    EXPECT_LE(s, 32768 / kMinSplitKeys);
    // B64 L4096: 512 blocks a split nearly fill it alone: a few splits at most.
    c.q_lens.assign(64, 1);
    c.kv_lens.assign(64, 4096);
    EXPECT_LE(kernels::decode_split_cuda_splits(problem_shape(c)), 8);
}
#endif
