// Interleaved checks (engine/fiber/interleave.hpp): the scheduler alone
// (waits served by one release, order, exceptions, phase timing, slots),
// then real gates on fibers: a CPU family wrapped so that every run waits
// as a CUDA run does must give check_case's verdicts word for word, and a
// seeded campaign interleaving its cases must check the same cases, tally
// the same verdicts and shrink a mutant's failure to the same
// counterexample as one that checks them one by one.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/fiber/interleave.hpp"
#include "engine/timing/phase_timer.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/generators.hpp"
#include "properties/gates/case_check.hpp"
#include "tests/wrapped_target.hpp"

namespace attncheck {
namespace {

TEST(Interleave, OneReleaseServesEveryWaitingJob) {
    const std::vector<int> waits = {3, 0, 1, 5, 2};
    int releases = 0;
    std::vector<std::vector<int>> seen(waits.size()); // releases seen after each wait
    std::vector<std::function<void()>> jobs;
    for (size_t k = 0; k < waits.size(); ++k)
        jobs.emplace_back([&, k] {
            for (int w = 0; w < waits[k]; ++w) {
                EXPECT_TRUE(wait_in_fiber());
                seen[k].push_back(releases);
            }
        });
    run_interleaved(jobs, [&] { ++releases; });
    EXPECT_EQ(releases, 5) << "as many releases as the most waits of one job";
    for (size_t k = 0; k < waits.size(); ++k) {
        ASSERT_EQ(seen[k].size(), static_cast<size_t>(waits[k]));
        for (int w = 0; w < waits[k]; ++w) EXPECT_EQ(seen[k][static_cast<size_t>(w)], w + 1) << "job " << k;
    }
}

TEST(Interleave, JobsRunInOrderBetweenReleases) {
    std::string trace;
    std::vector<std::function<void()>> jobs;
    for (char name : std::string("abc"))
        jobs.emplace_back([&, name] {
            trace += name;
            wait_in_fiber();
            trace += static_cast<char>(name - 'a' + 'A');
        });
    run_interleaved(jobs, [&] { trace += '|'; });
    EXPECT_EQ(trace, "abc|ABC");
}

TEST(Interleave, SlotsNameTheJobsFiber) {
    EXPECT_EQ(fiber_slot(), 0);
    EXPECT_FALSE(wait_in_fiber()) << "outside run_interleaved there is nothing to wait with";
    std::vector<int> slots(4, -1);
    std::vector<std::function<void()>> jobs;
    for (size_t k = 0; k < slots.size(); ++k)
        jobs.emplace_back([&, k] {
            wait_in_fiber();
            slots[k] = fiber_slot();
        });
    run_interleaved(jobs, [] {});
    for (size_t k = 0; k < slots.size(); ++k) EXPECT_EQ(slots[k], static_cast<int>(k) + 1);
    EXPECT_EQ(fiber_slot(), 0);
}

TEST(Interleave, AJobsExceptionWaitsForTheOthersAndIsRethrown) {
    int finished = 0;
    std::vector<std::function<void()>> jobs = {
        [&] {
            wait_in_fiber();
            throw std::runtime_error("first");
        },
        [&] {
            wait_in_fiber();
            wait_in_fiber();
            ++finished;
        },
        [&] { throw std::logic_error("second"); },
    };
    try {
        run_interleaved(jobs, [] {});
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "first") << "the first job's exception, in job order";
    }
    EXPECT_EQ(finished, 1) << "the other jobs ran to their end";
}

// A job that waits while handling an exception finds it again: the other
// jobs handle exceptions of their own meanwhile (the chain of handled
// exceptions is per thread in C++, and is swapped with the fibers).
TEST(Interleave, AWaitInsideACatchBlockKeepsItsException) {
    std::vector<std::string> rethrown(3);
    std::vector<std::function<void()>> jobs;
    for (size_t k = 0; k < rethrown.size(); ++k)
        jobs.emplace_back([&, k] {
            try {
                throw std::runtime_error("job " + std::to_string(k));
            } catch (...) {
                wait_in_fiber();
                try {
                    throw; // the exception being handled
                } catch (const std::exception& e) {
                    rethrown[k] = e.what();
                }
            }
            EXPECT_EQ(std::uncaught_exceptions(), 0);
        });
    run_interleaved(jobs, [] {});
    for (size_t k = 0; k < rethrown.size(); ++k) EXPECT_EQ(rethrown[k], "job " + std::to_string(k));
}

TEST(Interleave, AFailedReleaseIsThrownWhereTheJobsWait) {
    int caught = 0;
    std::vector<std::function<void()>> jobs;
    for (int k = 0; k < 3; ++k)
        jobs.emplace_back([&] {
            try {
                wait_in_fiber();
            } catch (const std::runtime_error& e) {
                EXPECT_STREQ(e.what(), "device lost");
                ++caught;
            }
        });
    run_interleaved(jobs, [] { throw std::runtime_error("device lost"); });
    EXPECT_EQ(caught, 3);
}

TEST(Interleave, NestingIsRefused) {
    std::vector<std::function<void()>> inner = {[] {}};
    std::vector<std::function<void()>> jobs = {[&] { run_interleaved(inner, [] {}); }};
    EXPECT_THROW(run_interleaved(jobs, [] {}), std::logic_error);
}

// A job waiting inside a phase is not charged for the time the release
// takes: that is charged to the release's own phase, once.
TEST(Interleave, PhaseTimeFollowsTheFiber) {
    using namespace std::chrono_literals;
    reset_phase_totals();
    std::vector<std::function<void()>> jobs;
    for (int k = 0; k < 4; ++k)
        jobs.emplace_back([] {
            ScopedPhase p(Phase::oracle);
            std::this_thread::sleep_for(1ms);
            wait_in_fiber();
            std::this_thread::sleep_for(1ms);
        });
    run_interleaved(jobs, [] {
        ScopedPhase w(Phase::device_wait);
        std::this_thread::sleep_for(60ms);
    });
    const PhaseTotals t = phase_totals();
    const double oracle = t.seconds[static_cast<int>(Phase::oracle)];
    const double wait = t.seconds[static_cast<int>(Phase::device_wait)];
    EXPECT_GE(oracle, 0.007);
    EXPECT_LT(oracle, 0.050) << "the jobs were charged for the release";
    EXPECT_GE(wait, 0.060);
    EXPECT_EQ(t.entries[static_cast<int>(Phase::oracle)], 4);
    EXPECT_EQ(t.entries[static_cast<int>(Phase::device_wait)], 1);
}

// A CPU family whose every run waits once before it answers, as a CUDA
// run waits for its outputs.
class Waiting final : public WrappedTarget {
public:
    using WrappedTarget::WrappedTarget;
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
        Observation o = WrappedTarget::run(p, probe);
        waits += wait_in_fiber();
        return o;
    }
    int waits = 0;
};

// Every CPU family, production and one mutant each: the interleaved
// verdicts are check_case's, gate for gate and word for word.
TEST(Interleave, GatesOnFibersGiveCheckCaseVerdicts) {
    const auto gates = gate_pointers({});
    int compared = 0, failing = 0;
    for (const auto& proto : make_targets(Backend::cpu)) {
        for (Mutant m : {Mutant::none, Mutant::scale_twice}) {
            auto single = make_target(proto->name(), Backend::cpu, m);
            if (!single) continue;
            Waiting waiting(make_target(proto->name(), Backend::cpu, m));
            const std::vector<Case> cases = seeded_cases(*single, 6, 21 + static_cast<int>(m));
            std::vector<CaseCheck> one_by_one, interleaved(cases.size());
            for (const Case& c : cases) one_by_one.push_back(check_case(*single, c, gates, false));
            std::vector<std::function<void()>> jobs;
            for (size_t k = 0; k < cases.size(); ++k)
                jobs.emplace_back([&, k] { interleaved[k] = check_case(waiting, cases[k], gates, false); });
            int releases = 0;
            run_interleaved(jobs, [&] { ++releases; });
            EXPECT_GT(waiting.waits, static_cast<int>(cases.size()) * 5) << waiting.full_name();
            EXPECT_LT(releases, waiting.waits / 2) << "the waits were not shared";
            for (size_t i = 0; i < cases.size(); ++i) {
                ASSERT_EQ(interleaved[i].outcomes.size(), one_by_one[i].outcomes.size());
                for (size_t g = 0; g < one_by_one[i].outcomes.size(); ++g) {
                    const GateOutcome &a = interleaved[i].outcomes[g], &b = one_by_one[i].outcomes[g];
                    EXPECT_EQ(a.verdict.status, b.verdict.status) << waiting.full_name() << " " << b.gate->name;
                    EXPECT_EQ(a.verdict.summary, b.verdict.summary) << waiting.full_name() << " " << b.gate->name;
                }
                failing += one_by_one[i].failure() != nullptr;
                ++compared;
            }
        }
    }
    EXPECT_GT(compared, 40);
    EXPECT_GT(failing, 5) << "the mutant should give failing verdicts to compare as well";
}

CampaignResult seeded_campaign(Target& t, int interleave, int* releases, long long cases) {
    CampaignOptions o;
    o.drawer = Drawer::seeded;
    o.seed = 9;
    o.cases = cases;
    o.interleave = interleave;
    if (interleave > 1) o.release = [releases] { ++*releases; };
    return run_campaign(t, o);
}

TEST(Interleave, ACampaignChecksTheSameCasesInterleaved) {
    int releases = 0;
    Waiting one(make_target("decode_split", Backend::cpu)), many(make_target("decode_split", Backend::cpu));
    const CampaignResult a = seeded_campaign(one, 1, &releases, 120);
    const CampaignResult b = seeded_campaign(many, 8, &releases, 120);
    EXPECT_EQ(a.cases, 120);
    EXPECT_EQ(b.cases, a.cases);
    EXPECT_EQ(b.unsupported, a.unsupported);
    ASSERT_EQ(b.tallies.size(), a.tallies.size());
    for (const auto& [gate, t] : a.tallies) {
        const GateTally& u = b.tallies.at(gate);
        EXPECT_EQ(u.pass, t.pass) << gate;
        EXPECT_EQ(u.skip, t.skip) << gate;
        EXPECT_EQ(u.fail, t.fail) << gate;
        EXPECT_EQ(u.ratios, t.ratios) << gate;
    }
    EXPECT_EQ(one.waits, 0) << "one by one, nothing waits in a fiber";
    EXPECT_GT(many.waits, 0);
    EXPECT_GT(releases, 0);
    EXPECT_LT(releases, many.waits / 4);
}

TEST(Interleave, ACampaignShrinksTheSameCounterexampleInterleaved) {
    int releases = 0;
    Waiting one(make_target("decode", Backend::cpu, Mutant::scale_twice));
    Waiting many(make_target("decode", Backend::cpu, Mutant::scale_twice));
    const CampaignResult a = seeded_campaign(one, 1, &releases, 2000);
    const CampaignResult b = seeded_campaign(many, 8, &releases, 2000);
    ASSERT_TRUE(a.failure);
    ASSERT_TRUE(b.failure) << "scale_twice survived " << b.cases << " interleaved cases";
    EXPECT_EQ(b.cases, a.cases);
    EXPECT_EQ(b.failure->gate, a.failure->gate);
    EXPECT_EQ(case_to_json(b.failure->kase, -1), case_to_json(a.failure->kase, -1));
    EXPECT_EQ(b.failure->shrink_steps, a.failure->shrink_steps);
}

} // namespace
} // namespace attncheck
