// The property suite under GoogleTest: every gate against every target of
// the backend, each a RapidCheck property (RC_PARAMS works: seed,
// max_success, reproduce). On the correct engine every gate must hold; a
// failure prints the gate report, writes the shrunk case to
// attncheck-counterexamples/ and prints the command that replays it.
//
// Built twice: test_properties_cpu (cpu label) and, with
// ATTNCHECK_TEST_CUDA, test_properties_gpu (gpu label, skipped without a
// device).
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <fmt/format.h>

#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/counterexample.hpp"
#include "tests/backend_under_test.hpp"

using namespace attncheck;

namespace {

struct Param {
    std::string target, gate;
};

std::vector<Param> params() {
    std::vector<Param> v;
    for (const auto& t : make_targets(Backend::cpu))
        for (const Gate& g : all_gates()) v.push_back({t->name(), g.name});
    return v;
}

void PrintTo(const Param& p, std::ostream* os) { *os << p.target << "/" << p.gate; }

class GateProperty : public ::testing::TestWithParam<Param> {};

TEST_P(GateProperty, HoldsOnTheEngine) {
    ATTNCHECK_REQUIRE_BACKEND();
    const Backend b = test_backend();
    auto target = make_target(GetParam().target, b);
    ASSERT_TRUE(target);
    const Gate* gate = find_gate(GetParam().gate);
    ASSERT_TRUE(gate);
    const Capabilities caps = probe_capabilities(*target);
    ASSERT_FALSE(caps.empty()) << target->full_name() << " supports no shape";
    long long judged = 0;
    const std::string id = fmt::format("{}/{}", target->full_name(), gate->name);
    const bool ok = rc::check(id, [&] {
        const Case c = *gen_case(caps);
        RC_PRE(target->unsupported(c).empty());
        const CaseCheck chk = check_case(*target, c, {gate});
        const GateOutcome& o = chk.outcomes.front();
        if (o.verdict.status == GateStatus::pass) ++judged;
        if (o.verdict.status == GateStatus::fail) {
            const Counterexample ce = counterexample_of(*target, c, o);
            const std::string path = save_counterexample(ce, "attncheck-counterexamples");
            RC_FAIL(fmt::format("{}\n{}\nreplay: attncheck repro {}", o.verdict.summary, ce.report, path));
        }
    });
    EXPECT_TRUE(ok) << id;
    // A gate that never applies tests nothing: some cases must be judged,
    // except where the gate cannot apply to the target at all (split
    // invariance to a target that does not split, decode = last prefill row
    // to a decode-only target, paging to a target that does not page).
    const std::string g = gate->name;
    const bool can_apply = !(g == "split_invariance" && !target->profile(Case{}).uses_splits) &&
                           !(g == "decode_prefill" && caps.decode_only) && !(g == "paging" && !caps.paged_kv);
    if (can_apply) {
        EXPECT_GT(judged, 0) << id << ": the gate judged no case";
    }
}

INSTANTIATE_TEST_SUITE_P(Engine, GateProperty, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param>& i) { return i.param.target + "_" + i.param.gate; });

} // namespace
