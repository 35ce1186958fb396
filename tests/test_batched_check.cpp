// Batched checking (check_cases, properties/gates/case_check.hpp): what an
// external adapter that takes max_batch > 1 gets. A wrapper gives a CPU
// family a batch size; its verdicts must be case-by-case check_case's, gate
// for gate and word for word, on the production families and on every
// mutant they carry, and the runs must really travel in batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/generators.hpp"
#include "properties/gates/case_check.hpp"
#include "tests/wrapped_target.hpp"

namespace attncheck {
namespace {

// A target that takes its runs `batch` at a time, each batch by the inner
// target run after run (Target::run_batch's default), and remembers the
// batch sizes. Optionally it refuses, or fails, every run.
class Batched final : public WrappedTarget {
public:
    enum class Answer { run, refuse, fail };
    Batched(std::unique_ptr<Target> inner, int batch, Answer a = Answer::run)
        : WrappedTarget(std::move(inner)), batch_(batch), answer_(a) {}
    int batch_size() const override { return batch_; }
    std::vector<RunAnswer> run_batch(const std::vector<RunRequest>& runs) override {
        EXPECT_LE(static_cast<int>(runs.size()), batch_) << "a batch larger than the target takes";
        sizes.push_back(static_cast<int>(runs.size()));
        if (answer_ == Answer::run) return Target::run_batch(runs);
        std::vector<RunAnswer> out(runs.size());
        for (auto& a : out) (answer_ == Answer::refuse ? a.unsupported : a.error) = "no, said the adapter";
        return out;
    }
    std::vector<int> sizes;

private:
    int batch_;
    Answer answer_;
};

void expect_same_checks(const std::vector<CaseCheck>& batched, const std::vector<CaseCheck>& single,
                        const std::string& what) {
    ASSERT_EQ(batched.size(), single.size()) << what;
    for (size_t i = 0; i < single.size(); ++i) {
        ASSERT_EQ(batched[i].outcomes.size(), single[i].outcomes.size()) << what << " case " << i;
        for (size_t g = 0; g < single[i].outcomes.size(); ++g) {
            const GateOutcome &b = batched[i].outcomes[g], &s = single[i].outcomes[g];
            EXPECT_EQ(b.gate, s.gate);
            EXPECT_EQ(b.verdict.status, s.verdict.status) << what << " case " << i << " gate " << s.gate->name;
            EXPECT_EQ(b.verdict.summary, s.verdict.summary) << what << " case " << i << " gate " << s.gate->name;
        }
    }
}

// Every gate, every CPU family, the production build and each mutant it
// carries: the batched verdicts are check_case's. Run to the end (no stop
// at the first failure) so that every gate's verdict is compared, failing
// ones included; and once with stop_at_first, whose outcomes end at the
// same gate.
TEST(CheckCases, GiveCheckCasesVerdictsOnEveryFamilyAndMutant) {
    const auto gates = gate_pointers({});
    int compared = 0, failing = 0;
    for (const auto& proto : make_targets(Backend::cpu)) {
        std::vector<Mutant> mutants = {Mutant::none};
        for (const MutantInfo& m : all_mutants())
            if (make_target(proto->name(), Backend::cpu, m.id)) mutants.push_back(m.id);
        for (Mutant m : mutants) {
            auto single = make_target(proto->name(), Backend::cpu, m);
            Batched batched(make_target(proto->name(), Backend::cpu, m), 7);
            const std::vector<Case> cases = seeded_cases(*single, 6, 11 + static_cast<int>(m));
            for (bool stop : {false, true}) {
                std::vector<CaseCheck> one_by_one;
                for (const Case& c : cases) one_by_one.push_back(check_case(*single, c, gates, stop));
                const std::string what = batched.full_name() + (stop ? " stop_at_first" : " all gates");
                expect_same_checks(check_cases(batched, cases, gates, stop), one_by_one, what);
                for (const auto& chk : one_by_one) failing += chk.failure() != nullptr;
                compared += static_cast<int>(cases.size());
            }
        }
    }
    EXPECT_GT(compared, 100);
    EXPECT_GT(failing, 10) << "the mutants should give failing verdicts to compare as well";
}

// The runs travel in batches: fewer calls than runs, none above the batch
// size, and most of them full.
TEST(CheckCases, SendRunsInBatches) {
    Batched t(make_target("flash_prefill", Backend::cpu), 16);
    const std::vector<Case> cases = seeded_cases(t, 8, 3);
    const auto checks = check_cases(t, cases, gate_pointers({}));
    for (const auto& c : checks) EXPECT_EQ(c.failure(), nullptr);
    const int runs = std::accumulate(t.sizes.begin(), t.sizes.end(), 0);
    EXPECT_GT(runs, 8 * 5) << "every case's gates make several runs";
    EXPECT_LT(static_cast<int>(t.sizes.size()), runs / 4) << "runs were not batched";
    EXPECT_EQ(*std::max_element(t.sizes.begin(), t.sizes.end()), 16);
}

// A refusal in a batch skips the gate that asked, an error fails it, as
// check_case does for a run that throws.
TEST(CheckCases, RefusalsSkipAndErrorsFail) {
    const auto gates = gate_pointers({});
    Batched refusing(make_target("decode", Backend::cpu), 4, Batched::Answer::refuse);
    const std::vector<Case> cases = seeded_cases(refusing, 3, 5);
    for (const auto& chk : check_cases(refusing, cases, gates)) {
        EXPECT_EQ(chk.failure(), nullptr);
        int skipped = 0;
        for (const auto& o : chk.outcomes)
            if (o.verdict.status == GateStatus::skip &&
                o.verdict.summary.find("no, said the adapter") != std::string::npos)
                ++skipped;
        EXPECT_GT(skipped, 5);
    }
    Batched failing(make_target("decode", Backend::cpu), 4, Batched::Answer::fail);
    for (const auto& chk : check_cases(failing, cases, gates)) {
        ASSERT_NE(chk.failure(), nullptr);
        EXPECT_NE(chk.failure()->verdict.summary.find("the target threw: no, said the adapter"), std::string::npos)
            << chk.failure()->verdict.summary;
        EXPECT_EQ(&chk.outcomes.back(), chk.failure()) << "outcomes end at the first failure";
    }
}

// A seeded campaign on a batching target checks its cases in batches, and
// still finds, shrinks and names a mutant's failure.
TEST(CheckCases, ASeededCampaignBatchesAndShrinks) {
    Batched t(make_target("decode", Backend::cpu, Mutant::scale_twice), 8);
    CampaignOptions o;
    o.drawer = Drawer::seeded;
    o.seed = 5;
    o.cases = 2000;
    const CampaignResult r = run_campaign(t, o);
    ASSERT_TRUE(r.failure) << "scale_twice survived " << r.cases << " batched cases";
    EXPECT_FALSE(t.sizes.empty());
    EXPECT_GT(*std::max_element(t.sizes.begin(), t.sizes.end()), 1);
    EXPECT_LE(r.failure->kase.batch(), 2);
    const CaseCheck chk = check_case(t, r.failure->kase, gate_pointers({}));
    ASSERT_NE(chk.failure(), nullptr);
    EXPECT_EQ(std::string(chk.failure()->gate->name), r.failure->gate);
}

} // namespace
} // namespace attncheck
