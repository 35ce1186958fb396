// Worker threads and the seeded drawer (properties/campaign/parallel_run.hpp,
// campaign.hpp): what CUDA runs use, exercised here on the CPU backend so
// that CI, which has no GPU, runs the same code. Built twice, like the
// property tests: the gpu binary repeats them on CUDA where a device is
// visible.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "engine/case/case_distribution.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/generators.hpp"
#include "properties/campaign/parallel_run.hpp"
#include "tests/backend_under_test.hpp"

namespace attncheck {
namespace {

TEST(SeededDrawer, ARecordReplaysToTheSameCase) {
    const Capabilities caps = probe_capabilities(*make_target("decode_split", Backend::cpu));
    for (std::uint64_t i = 0; i < 200; ++i) {
        SeededChooser seeded(case_seed(42, static_cast<long long>(i)));
        RecordingChooser rec(seeded);
        const Case c = build_case(caps, GenLimits{}, rec);
        ASSERT_FALSE(rec.record().empty());
        // The replayed generator's first value (before any shrink) is the case.
        const auto shrinkable = gen_replayed_case(caps, GenLimits{}, rec.record())(rc::Random(), 0);
        EXPECT_EQ(case_to_json(shrinkable.value()), case_to_json(c)) << "case " << i;
    }
}

TEST(SeededDrawer, CasesDependOnTheSeedAndIndexOnly) {
    const Capabilities caps = probe_capabilities(*make_target("flash_prefill", Backend::cpu));
    auto draw = [&](std::uint64_t seed, long long i) {
        SeededChooser ch(case_seed(seed, i));
        return case_to_json(build_case(caps, GenLimits{}, ch));
    };
    EXPECT_EQ(draw(7, 3), draw(7, 3));
    EXPECT_NE(draw(7, 3), draw(7, 4));
    EXPECT_NE(draw(7, 3), draw(8, 3));
}

// A seeded campaign finds a mutant and RapidCheck shrinks it from the
// recorded draws: the shrunk case is small and still fails the gate it was
// recorded with. (Which gate is first depends on the case: without
// RapidCheck's size ramp the first failing draw can be large, and on the
// H200 normalization's one-hot check saw this mutant before effective_scale;
// the mutation score, which names the expected gate, uses RapidCheck's
// drawer.)
TEST(SeededDrawer, FindsAndShrinksAMutant) {
    ATTNCHECK_REQUIRE_BACKEND();
    auto t = make_target("decode", test_backend(), Mutant::scale_twice);
    ASSERT_TRUE(t);
    CampaignOptions o;
    o.drawer = Drawer::seeded;
    o.seed = 5;
    o.cases = 2000;
    const CampaignResult r = run_campaign(*t, o);
    ASSERT_TRUE(r.failure) << "scale_twice survived " << r.cases << " seeded cases";
    EXPECT_GE(r.failure->shrink_steps, 0);
    // Shrinking reached a small case: one or two sequences, a few heads.
    const Case& c = r.failure->kase;
    EXPECT_LE(c.batch(), 2);
    EXPECT_LE(c.n_q_heads, 4);
    // The report's shrink trajectory runs from the case found to this one.
    ASSERT_FALSE(r.failure->shrink_trajectory.empty());
    EXPECT_EQ(r.failure->shrink_trajectory.back(), case_shape_summary(c));
    // And it replays: the recorded gate is the first to fail on the shrunk case.
    const CaseCheck chk = check_case(*t, c, gate_pointers({}));
    ASSERT_NE(chk.failure(), nullptr);
    EXPECT_EQ(std::string(chk.failure()->gate->name), r.failure->gate);
}

// Worker threads on one backend: every gate held, the workers' tallies add
// up, nothing is reported twice. On the CPU this is the thread-safety of the
// whole stack (targets, gates, oracle service, phase timers) that CUDA runs
// rely on.
TEST(WorkerThreads, RunEveryTargetAndHold) {
    ATTNCHECK_REQUIRE_BACKEND();
    RunSpec spec;
    spec.backend = test_backend();
    spec.cases = 60;
    spec.seed = 3;
    spec.workers = 3;
    spec.limits = default_limits(spec.backend);
    const RunReport r = run_threads(spec);
    EXPECT_TRUE(r.worker_errors.empty()) << r.worker_errors.front();
    EXPECT_EQ(r.workers, 3);
    long long per_target = 0;
    for (const TargetRun& tr : r.targets) {
        EXPECT_FALSE(tr.failure) << tr.target << ": " << tr.failure->gate << " " << tr.failure->summary;
        per_target += tr.cases;
    }
    EXPECT_EQ(per_target, r.cases);
    EXPECT_EQ(static_cast<long long>(r.targets.size()), static_cast<long long>(family_names().size()));
    EXPECT_GT(r.cases, 0);
    EXPECT_GT(r.tallies.at("parity").pass, 0);
}

// A process of a CUDA run with --processes runs a range of the worker
// threads: the ranges together are the whole run, case for case and
// verdict for verdict (each worker's seed depends on its index only).
TEST(WorkerThreads, RangesOfThreadsAddUpToTheRun) {
    ATTNCHECK_REQUIRE_BACKEND();
    RunSpec spec;
    spec.backend = test_backend();
    spec.targets = {"decode_gqa"};
    spec.cases = 30;
    spec.seed = 5;
    spec.workers = 4;
    const RunReport whole = run_threads(spec);
    const RunReport a = run_threads(spec, 0, 1), b = run_threads(spec, 1, 4);
    EXPECT_EQ(a.workers + b.workers, whole.workers);
    EXPECT_EQ(a.cases + b.cases, whole.cases);
    EXPECT_EQ(whole.cases, 30);
    for (const auto& [gate, t] : whole.tallies) {
        const auto part = [&](const RunReport& r) { return r.tallies.count(gate) ? r.tallies.at(gate).pass : 0; };
        EXPECT_EQ(part(a) + part(b), t.pass) << gate;
    }
}

// A failure in a worker thread is shrunk under RapidCheck's lock while the
// other threads go on: every thread reports its own failure.
TEST(WorkerThreads, EachThreadShrinksItsOwnFailure) {
    ATTNCHECK_REQUIRE_BACKEND();
    RunSpec spec;
    spec.backend = test_backend();
    spec.mutant = Mutant::scale_missing;
    spec.targets = {"decode"};
    spec.cases = 400;
    spec.seed = 9;
    spec.workers = 4;
    const RunReport r = run_threads(spec);
    ASSERT_EQ(r.targets.size(), 1u);
    EXPECT_TRUE(r.worker_errors.empty());
    ASSERT_TRUE(r.targets[0].failure);
    EXPECT_EQ(r.targets[0].also_failed_in, 3);
    // (Which gate is first depends on the case: without RapidCheck's size
    // ramp a seeded draw can be large enough for an unscaled softmax to
    // starve a past key, which the causal gate sees before effective_scale.)
    EXPECT_FALSE(r.targets[0].failure->gate.empty());
}

// CUDA worker threads check `interleave` cases at once (engine/fiber/
// interleave.hpp): the same cases and the same verdicts, gate for gate and
// ratio for ratio, as one case after another. (On the CPU backend the
// option does nothing: CPU targets never wait; tests/test_interleave.cpp
// checks the scheduler and the gates on fibers there.)
TEST(WorkerThreads, InterleavedCasesGiveTheSameVerdicts) {
    ATTNCHECK_REQUIRE_BACKEND();
    RunSpec spec;
    spec.backend = test_backend();
    spec.cases = 120;
    spec.seed = 13;
    spec.workers = 2;
    spec.limits = default_limits(spec.backend);
    spec.interleave = 1;
    const RunReport one = run_threads(spec);
    spec.interleave = 12;
    const RunReport many = run_threads(spec);
    EXPECT_TRUE(one.worker_errors.empty() && many.worker_errors.empty());
    EXPECT_EQ(many.cases, one.cases);
    ASSERT_EQ(many.targets.size(), one.targets.size());
    for (size_t t = 0; t < one.targets.size(); ++t) {
        EXPECT_FALSE(many.targets[t].failure) << many.targets[t].target << ": " << many.targets[t].failure->summary;
        EXPECT_EQ(many.targets[t].cases, one.targets[t].cases) << one.targets[t].target;
        EXPECT_EQ(many.targets[t].unsupported, one.targets[t].unsupported) << one.targets[t].target;
    }
    for (const auto& [gate, t] : one.tallies) {
        const GateTally& u = many.tallies.at(gate);
        EXPECT_EQ(u.pass, t.pass) << gate;
        EXPECT_EQ(u.skip, t.skip) << gate;
        EXPECT_EQ(u.ratios, t.ratios) << gate;
        // Not bit for bit: interleaved, small problems' bounds come from the
        // GPU oracle, whose fp64 sums differ from the host's in the last
        // bits (it is held to the host's within 1e-12, oracle_service.hpp).
        EXPECT_NEAR(u.worst_ratio, t.worst_ratio, 1e-9 * std::max(1.0, t.worst_ratio)) << gate;
    }
}

} // namespace
} // namespace attncheck
