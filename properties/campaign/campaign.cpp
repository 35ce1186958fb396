#include "properties/campaign/campaign.hpp"

#include <chrono>

#include <rapidcheck.h>

#include "engine/timing/phase_timer.hpp"

namespace attncheck {

namespace {

// Campaigns report their own failures (gate report, counterexample file);
// RapidCheck's default listener would also print a reproduce string at exit
// for every campaign that found one, mutation runs included.
class QuietListener final : public rc::detail::TestListener {
public:
    void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
    void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
    void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

} // namespace

Counterexample counterexample_of(Target& t, const Case& c, const GateOutcome& failed) {
    Counterexample ce;
    ce.kase = c;
    ce.target = t.name();
    ce.backend = t.backend();
    ce.mutant = t.mutant();
    ce.gate = failed.gate->name;
    ce.summary = failed.verdict.summary;
    ce.report = failure_report(t, c, failed);
    return ce;
}

CampaignResult run_campaign(Target& target, const CampaignOptions& opt) {
    using clock = std::chrono::steady_clock;
    CampaignResult res;
    const auto t0 = clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    const Capabilities caps = probe_capabilities(target);
    if (caps.empty()) return res;
    std::vector<const Gate*> gates = opt.gates.empty() ? gate_pointers({}) : opt.gates;

    bool shrinking = false;
    std::vector<const Gate*> shrink_gates; // gates up to the one that failed
    std::optional<std::pair<Case, CaseCheck>> last_fail;
    int shrink_steps = 0;

    auto property = [&] {
        // Everything done to shrink a failure is shrinking's cost.
        std::optional<ExclusivePhase> shrink_phase;
        if (shrinking) shrink_phase.emplace(Phase::shrink);
        const Case c = [&] {
            ScopedPhase phase(Phase::generate);
            return *gen_case(caps, opt.limits);
        }();
        if (!target.unsupported(c).empty()) {
            if (!shrinking) ++res.unsupported;
            RC_DISCARD("unsupported by the target");
        }
        CaseCheck chk = check_case(target, c, shrinking ? shrink_gates : gates);
        const GateOutcome* f = chk.failure();
        if (!shrinking) {
            for (const auto& o : chk.outcomes) {
                GateTally& t = res.tallies[o.gate->name];
                (o.verdict.status == GateStatus::pass   ? t.pass
                 : o.verdict.status == GateStatus::fail ? t.fail
                                                        : t.skip)++;
            }
            if (!f) {
                ++res.cases;
                if (opt.progress) opt.progress(res.cases, elapsed());
            }
        }
        if (f) {
            if (!shrinking) {
                shrinking = true;
                res.seconds_to_failure = elapsed();
                for (const Gate* g : gates) {
                    shrink_gates.push_back(g);
                    if (g == f->gate) break;
                }
            } else {
                ++shrink_steps;
            }
            const std::string msg = std::string(f->gate->name) + ": " + f->verdict.summary;
            last_fail.emplace(c, std::move(chk));
            RC_FAIL(msg);
        }
    };

    for (std::uint64_t round = 0;; ++round) {
        const long long left = opt.cases - res.cases;
        if (left <= 0 || (opt.seconds > 0 && elapsed() >= opt.seconds)) break;
        rc::detail::TestParams params;
        params.seed = opt.seed + round * 0x9e3779b97f4a7c15ull;
        params.maxSuccess = static_cast<int>(std::min(left, std::max(1LL, opt.round)));
        params.maxSize = 100;
        params.maxDiscardRatio = 20;
        params.disableShrinking = !opt.shrink;
        rc::detail::TestMetadata meta;
        meta.id = target.full_name();
        meta.description = target.full_name();
        const long long before = res.cases;
        QuietListener quiet;
        rc::detail::checkProperty(rc::detail::toProperty(property), meta, params, quiet);
        if (last_fail) {
            const auto& [c, chk] = *last_fail;
            const GateOutcome* f = chk.failure();
            Counterexample ce = counterexample_of(target, c, *f);
            ce.seed = params.seed;
            ce.shrink_steps = shrink_steps;
            res.failure = std::move(ce);
            break;
        }
        if (res.cases == before) break; // everything discarded: nothing more to learn
    }
    res.seconds = elapsed();
    return res;
}

} // namespace attncheck
