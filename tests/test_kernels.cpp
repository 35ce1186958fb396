// Every kernel family against the oracle on the grid of kernel_grid.hpp,
// the probes against the oracle's stages, every mutant against the cases
// that must expose it, and a sequence's bits against its batch position.
// Compiled twice: for the CPU twins (label cpu) and for CUDA (label gpu;
// skipped, with the reason, without a device).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/targets/target.hpp"
#include "kernels/registry.hpp"
#include "oracle/parity.hpp"
#include "oracle/reference_attention.hpp"
#include "properties/gates/gate_util.hpp"
#include "tests/backend_under_test.hpp"
#include "tests/kernel_grid.hpp"

using namespace attncheck;

namespace {

const char* kFamilies[] = {"decode", "decode_gqa", "decode_split", "flash_prefill", "standard_path"};

std::string repro(const Case& c) { return case_to_json(c, -1); }

// ATTNCHECK_GRID_EVERY=N runs every N-th grid case (the sanitizer lane,
// where each launch is 10-100x slower).
std::vector<Case> grid_cases() {
    auto all = grid::kernel_grid_cases();
    const char* e = std::getenv("ATTNCHECK_GRID_EVERY");
    const int every = e ? std::max(1, std::atoi(e)) : 1;
    std::vector<Case> out;
    for (size_t i = 0; i < all.size(); i += static_cast<size_t>(every)) out.push_back(all[i]);
    return out;
}

} // namespace

class KernelGrid : public ::testing::TestWithParam<const char*> {};

TEST_P(KernelGrid, MatchesOracleUnderErrorModel) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto target = make_target(GetParam(), kBackend);
    ASSERT_TRUE(target);
    int ran = 0, skipped = 0, failed = 0;
    long long rows = 0, masked = 0, out_of_range = 0;
    double worst = 0;
    for (const Case& c : grid_cases()) {
        if (!target->unsupported(c).empty()) {
            ++skipped;
            continue;
        }
        const AttentionProblem p = materialize(c);
        Observation obs;
        try {
            obs = target->run(p);
        } catch (const std::exception& e) {
            ADD_FAILURE() << target->full_name() << " threw: " << e.what() << "\n  case: " << repro(c);
            ++failed;
            continue;
        }
        ++ran;
        const ParityReport rep = check_parity(p, reference_attention<double>(p), obs, target->profile(c));
        rows += rep.rows;
        masked += rep.masked_rows;
        out_of_range += rep.out_of_range_rows;
        worst = std::max({worst, rep.o.worst_ratio, rep.lse.worst_ratio});
        if (!rep.pass()) {
            ++failed;
            if (failed <= 5) ADD_FAILURE() << target->full_name() << ": " << rep.summary() << "\n  case: " << repro(c);
        }
    }
    std::printf(
        "%s: %d cases run, %d unsupported, %d failed; %lld rows (%lld fully masked, %lld out of range); "
        "worst err/bound %.3g\n",
        target->full_name().c_str(), ran, skipped, failed, rows, masked, out_of_range, worst);
    EXPECT_EQ(failed, 0);
    EXPECT_GE(ran * static_cast<int>(grid::kernel_grid_cases().size()), 60 * static_cast<int>(grid_cases().size()))
        << "the grid must really exercise the family";
}

INSTANTIATE_TEST_SUITE_P(Families, KernelGrid, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return std::string(info.param); });

// Reruns on the same inputs are bitwise identical (races, bug class 10).
TEST_P(KernelGrid, BitwiseRepeatable) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto target = make_target(GetParam(), kBackend);
    int checked = 0;
    const auto cases = grid_cases();
    for (size_t i = 0; i < cases.size(); i += 7) {
        const Case& c = cases[i];
        if (!target->unsupported(c).empty()) continue;
        const AttentionProblem p = materialize(c);
        const Observation a = target->run(p), b = target->run(p);
        ASSERT_EQ(a.o.size(), b.o.size());
        EXPECT_EQ(std::memcmp(a.o.data(), b.o.data(), a.o.size() * 4), 0) << "O differs between reruns: " << repro(c);
        EXPECT_EQ(std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * 4), 0) << "LSE differs: " << repro(c);
        ++checked;
    }
    EXPECT_GE(checked, 1);
}

// The probe records the stages the investigations logged by hand; check them
// against the oracle's row: masked keys have P = 0, max exp <= 1, P sums to
// 1, P and O inside the error model, and the probe's O is the output row.
TEST_P(KernelGrid, ProbeStagesMatchOracle) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto target = make_target(GetParam(), kBackend);
    int probed = 0;
    const auto cases = grid_cases();
    for (size_t i = 0; i < cases.size(); i += 5) {
        const Case& c = cases[i];
        if (!target->unsupported(c).empty()) continue;
        const AttentionProblem p = materialize(c);
        // Probe the last row of the first sequence with queries and keys.
        int seq = -1;
        for (int b = 0; b < p.batch() && seq < 0; ++b)
            if (p.q_lens[b] > 0 && p.kv_lens[b] > 0) seq = b;
        if (seq < 0) continue;
        const ProbeRequest req{seq, p.n_q_heads - 1, p.q_lens[seq] - 1};
        const Observation obs = target->run(p, req);
        ASSERT_TRUE(obs.probe.has_value()) << target->full_name() << " returned no probe";
        const ProbeTrace& t = *obs.probe;
        const PrecisionProfile prof = target->profile(c);
        const RowBound rb = bound_row(p, req.seq, req.head, req.token, prof);
        if (!rb.meaningful) continue;
        const auto ref = reference_row<double>(p, req.seq, req.head, req.token);
        const int n = p.kv_lens[seq];
        ASSERT_EQ(static_cast<int>(t.p.size()), n);
        ASSERT_EQ(static_cast<int>(t.o.size()), p.head_dim);
        ++probed;
        double sum = 0;
        for (int j = 0; j < n; ++j) {
            if (!ref.visible[j]) {
                EXPECT_EQ(t.p[j], 0.0f) << "masked key " << j << " has probability " << t.p[j] << ": " << repro(c);
                continue;
            }
            sum += t.p[j];
            // P is reconstructed from exps / row_sum in fp32: a few more uA.
            const double tol = rb.p[j] + 4 * prof.u_acc * ref.p[j];
            EXPECT_LE(std::fabs(t.p[j] - ref.p[j]), tol) << "P[" << j << "] " << repro(c);
        }
        if (rb.masked) continue;
        EXPECT_LE(t.max_exp, 1.0f) << "max exp above 1: row max not subtracted? " << repro(c);
        EXPECT_NEAR(sum, 1.0, 4 * rb.rho_p + 8 * n * prof.u_acc) << repro(c);
        const long long oi = p.o_index(req.seq, req.token, req.head);
        for (int ch = 0; ch < p.head_dim; ++ch)
            EXPECT_LE(std::fabs(t.o[ch] - ref.o[ch]), rb.o[ch]) << "probe O[" << ch << "] " << repro(c);
        (void)oi;
    }
    EXPECT_GE(probed, 1);
}

// Cases that expose each mutant: the mask mutants need causal rows with
// q_len != kv_len, gqa_map_mod needs groups of 2+ and 2+ kv heads, no_row_max
// needs logits above 88, fp16_accumulation long rows, split_merge_no_lse empty
// splits, missing_barrier several key tiles.
std::vector<Case> mutant_cases() {
    std::vector<Case> v;
    auto mk = [&](int hq, int hkv, int d, std::vector<int> q, std::vector<int> kv, bool causal, DType t) {
        Case c;
        c.n_q_heads = hq;
        c.n_kv_heads = hkv;
        c.head_dim = d;
        c.q_lens = std::move(q);
        c.kv_lens = std::move(kv);
        c.causal = causal;
        c.dtype = t;
        c.data.seed = 4242 + v.size();
        return c;
    };
    for (DType t : {DType::f16, DType::f32}) {
        v.push_back(mk(4, 2, 64, {1}, {40}, true, t));         // decode
        v.push_back(mk(4, 2, 64, {1, 1}, {3, 200}, false, t)); // decode, ragged
        v.push_back(mk(4, 2, 64, {9}, {130}, true, t));        // chunked prefill
        v.push_back(mk(4, 2, 64, {70}, {70}, true, t));        // square prefill
        v.push_back(mk(4, 2, 64, {8}, {3}, true, t));          // q > kv: masked rows
        Case w = mk(4, 2, 64, {1, 6}, {50, 50}, true, t);      // sliding window
        w.window = 4;
        v.push_back(w);
        Case big = mk(4, 2, 64, {1, 20}, {90, 90}, true, t); // logits far above 88
        big.data.q_scale = big.data.k_scale = 6.0;
        v.push_back(big);
        Case paged = mk(4, 2, 64, {1, 1}, {40, 77}, true, t); // a paged cache, pages of 16
        paged.page_size = 16;
        paged.page_seed = 9;
        v.push_back(paged);
        Case bigd = mk(4, 2, 64, {1}, {90}, false, t); // decode with logits far above 88
        bigd.data.q_scale = bigd.data.k_scale = 6.0;
        v.push_back(bigd);
        // Visible keys with logits near -14000 and a window hiding the rest:
        // a finite sentinel (-1e4) outranks them, -inf never does (class 2).
        Case sent = mk(1, 1, 2, {1}, {8}, true, t);
        sent.window = 2;
        sent.values = ExplicitValues{{100, 100}, {}, {}};
        for (int j = 0; j < 8; ++j) {
            sent.values->k.insert(sent.values->k.end(), {-100, -100});
            sent.values->v.insert(sent.values->v.end(), {static_cast<double>(j), static_cast<double>(-j)});
        }
        v.push_back(sent);
        Case lng = mk(2, 1, 64, {1, 4}, {1500, 1500}, false, t); // long rows, positive V offsets
        lng.data.v_scale = 8.0;
        lng.data.sink_tokens = 1;
        v.push_back(lng);
        Case sp = mk(4, 2, 64, {1, 1}, {3, 70}, true, t); // more splits than keys
        sp.num_splits = 7;
        v.push_back(sp);
    }
    return v;
}

TEST_P(KernelGrid, EveryMutantChangesSomeResult) {
    ATTNCHECK_REQUIRE_BACKEND();
    const auto cases = mutant_cases();
    for (const MutantInfo& mi : all_mutants()) {
        if (mi.cuda_only() && kBackend == Backend::cpu) continue;
        auto target = make_target(GetParam(), kBackend, mi.id);
        int supported = 0, caught = 0;
        for (const Case& c : cases) {
            if (!target->unsupported(c).empty()) continue;
            ++supported;
            const AttentionProblem p = materialize(c);
            bool visible = false;
            // A race may need several runs to show: up to 5 for missing_barrier.
            const int runs = mi.id == Mutant::missing_barrier ? 5 : 1;
            for (int r = 0; r < runs && !visible; ++r) {
                try {
                    const Observation obs = target->run(p);
                    visible = !check_parity(p, reference_attention<double>(p), obs, target->profile(c)).pass();
                } catch (const std::exception&) {
                    visible = true; // a crash or guard-band violation is visible too
                }
            }
            caught += visible;
        }
        if (supported == 0) continue; // the mutant does not apply to this family
        std::printf("%s: changes %d of %d cases\n", target->full_name().c_str(), caught, supported);
        EXPECT_GE(caught, 1) << target->full_name() << " changed no result: the mutant is invisible";
    }
}

namespace {

// Empty when x[i] and y[off + i] have the same bits for every i of x; else
// the first pair that does not.
std::string first_bit_difference(const char* what, const std::vector<float>& x, const std::vector<float>& y,
                                 long long off) {
    for (size_t i = 0; i < x.size(); ++i) {
        const float yi = y[static_cast<size_t>(off) + i];
        if (std::memcmp(&x[i], &yi, sizeof(float)) != 0) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "%s[%zu] %.9g alone vs %.9g in the batch", what, i, x[i], yi);
            return buf;
        }
    }
    return {};
}

} // namespace

// A sequence gives the same bits wherever it sits in a batch: every family
// promises it (Target::promises_batch_invariance; deterministic serving).
// Each sequence runs alone, then after a neighbour that moves its Q/O and
// K/V blocks to other element offsets: odd ones (odd head counts, odd
// head_dim, odd neighbour lengths), even ones and none. A kernel, or a
// library such as cuBLAS, that picks its code path from pointer alignment
// rounds differently there (standard_path on an H200: fp32, q_len 17,
// head_dim 7 and 33, the copy at an odd offset).
TEST_P(KernelGrid, SequenceBitsIndependentOfBatchPosition) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto target = make_target(GetParam(), kBackend);
    ASSERT_TRUE(target);
    ASSERT_TRUE(target->promises_batch_invariance());
    struct Lens {
        int q, kv;
    };
    // Decode families take q_len 1 (neighbours 0 or 1); the others q_len 17.
    const Lens shapes[] = {{1, 3}, {1, 40}, {17, 2}, {17, 3}, {17, 40}};
    const Lens neighbours[] = {{1, 1}, {1, 2}, {0, 3}, {2, 5}, {1, 8}};
    const int dims[] = {7, 33, 64, 80, 128};
    // One q head: standard_path's only S GEMM is then 16-byte aligned at
    // position 0 (cublasGemmBatchedEx) and may not be after a neighbour
    // (cublasGemmEx), which is how the H200 failure came about. Three q
    // heads: head offsets of odd multiples of head_dim inside a sequence.
    const int heads[][2] = {{1, 1}, {3, 1}};
    int ran = 0, odd_offset = 0, unaligned = 0, failed = 0, idx = 0;
    bool odd_dim_ran = false;
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (const auto& hh : heads)
            for (int d : dims)
                for (const Lens& sh : shapes)
                    for (const Lens& nb : neighbours) {
                        Case c;
                        c.n_q_heads = hh[0];
                        c.n_kv_heads = hh[1];
                        c.head_dim = d;
                        c.q_lens = {sh.q, nb.q};
                        c.kv_lens = {sh.kv, nb.kv};
                        c.dtype = t;
                        c.causal = idx % 2 == 0;
                        c.num_splits = 1 + idx % 4;
                        c.data.seed = 7000 + static_cast<std::uint64_t>(idx++);
                        if (!target->unsupported(c).empty()) continue;
                        const AttentionProblem p = materialize(c);
                        const AttentionProblem alone = select_sequences(p, {0});
                        const AttentionProblem placed = select_sequences(p, {1, 0});
                        if (!target->unsupported(shape_of(alone)).empty() ||
                            !target->unsupported(shape_of(placed)).empty())
                            continue;
                        const Observation a = target->run(alone), b = target->run(placed);
                        ++ran;
                        const long long o0 = placed.o_index(1, 0, 0), l0 = placed.lse_index(1, 0, 0);
                        const long long k0 = placed.kv_index(1, 0, 0);
                        if (o0 % 2 != 0 || k0 % 2 != 0) ++odd_offset;
                        const long long bytes = t == DType::f32 ? 4 : 2;
                        odd_dim_ran = odd_dim_ran || d % 2 != 0;
                        if ((o0 * bytes) % 256 != 0 || (k0 * bytes) % 256 != 0) ++unaligned;
                        ASSERT_EQ(a.o.size() + static_cast<size_t>(o0), b.o.size());
                        ASSERT_EQ(a.lse.size() + static_cast<size_t>(l0), b.lse.size());
                        std::string diff = first_bit_difference("O", a.o, b.o, o0);
                        if (diff.empty()) diff = first_bit_difference("LSE", a.lse, b.lse, l0);
                        if (!diff.empty() && ++failed <= 5)
                            ADD_FAILURE()
                                << target->full_name() << ": the case's sequence 0 placed after its sequence 1"
                                << " (q_len " << nb.q << ", kv_len " << nb.kv << "; Q/O offset " << o0
                                << ", K/V offset " << k0 << " elements) differs from its run alone: " << diff
                                << "\n  case: " << repro(c);
                    }
    std::printf("%s: %d placements run (%d at an odd element offset, %d off 256-byte alignment), %d differ\n",
                target->full_name().c_str(), ran, odd_offset, unaligned, failed);
    EXPECT_EQ(failed, 0);
    EXPECT_GE(ran, 20) << "too few supported shapes to exercise the family";
    EXPECT_GE(unaligned, 1) << "no placement off 256-byte alignment";
    // Odd offsets need an odd head_dim, which flash_prefill does not take.
    if (odd_dim_ran) {
        EXPECT_GE(odd_offset, 1) << "no placement at an odd element offset";
    }
}
