#include "properties/campaign/campaign.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>

#include <rapidcheck.h>

#include "engine/fiber/interleave.hpp"
#include "engine/timing/phase_timer.hpp"
#include "properties/campaign/rapidcheck_driver.hpp"

namespace attncheck {

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

void GateTally::add(const GateVerdict& v, const Case* c) {
    (v.status == GateStatus::pass ? pass : v.status == GateStatus::fail ? fail : skip)++;
    if (const int b = ratio_bucket(v.ratio); b >= 0) {
        ++ratios[static_cast<std::size_t>(b)];
        if (v.ratio > worst_ratio) {
            worst_ratio = v.ratio;
            worst_detail = v.summary;
            worst_shape = c ? case_shape_summary(*c) : std::string();
            worst_case = c ? case_to_json(*c, -1) : std::string();
        }
    }
}

void add_tallies(std::map<std::string, GateTally>& into, const std::map<std::string, GateTally>& from) {
    for (const auto& [g, t] : from) {
        GateTally& i = into[g];
        i.pass += t.pass;
        i.fail += t.fail;
        i.skip += t.skip;
        for (int b = 0; b < kRatioBuckets; ++b)
            i.ratios[static_cast<std::size_t>(b)] += t.ratios[static_cast<std::size_t>(b)];
        if (t.worst_ratio > i.worst_ratio) {
            i.worst_ratio = t.worst_ratio;
            i.worst_shape = t.worst_shape;
            i.worst_case = t.worst_case;
            i.worst_detail = t.worst_detail;
        }
    }
}

std::uint64_t case_seed(std::uint64_t campaign_seed, long long i) {
    std::uint64_t x = campaign_seed ^ (static_cast<std::uint64_t>(i) * 0xd1342543de82ef95ull);
    return splitmix64(x);
}

std::mutex& rapidcheck_lock() {
    static std::mutex m;
    return m;
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
    std::vector<std::string> trajectory;
    auto trace_shape = [&](const Case& c) {
        std::string shape = case_shape_summary(c);
        if (trajectory.empty() || trajectory.back() != shape) trajectory.push_back(std::move(shape));
    };

    auto tally = [&](const CaseCheck& chk, const Case& c) {
        for (const auto& o : chk.outcomes) res.tallies[o.gate->name].add(o.verdict, &c);
    };
    // A failure the ledger lists: counted (outside shrinking), not a failure.
    long long known_cases = 0;
    auto known = [&](const Case& c, const GateOutcome* f) {
        if (!f || !opt.ledger) return false;
        const int k = opt.ledger->match(target, f->gate->name, c);
        if (k < 0) return false;
        if (!shrinking) {
            ++res.known[k];
            ++known_cases;
        }
        return true;
    };
    auto first_failure = [&](const GateOutcome& f) {
        shrinking = true;
        res.seconds_to_failure = elapsed();
        for (const Gate* g : gates) {
            shrink_gates.push_back(g);
            if (g == f.gate) break;
        }
    };

    rc::Gen<Case> gen = gen_case(caps, opt.limits);
    auto property = [&] {
        // Everything done to shrink a failure is shrinking's cost.
        std::optional<ExclusivePhase> shrink_phase;
        if (shrinking) shrink_phase.emplace(Phase::shrink);
        const Case c = [&] {
            ScopedPhase phase(Phase::generate);
            return *gen;
        }();
        if (!target.unsupported(c).empty()) {
            if (!shrinking) ++res.unsupported;
            RC_DISCARD("unsupported by the target");
        }
        CaseCheck chk = check_case(target, c, shrinking ? shrink_gates : gates);
        const GateOutcome* f = chk.failure();
        if (known(c, f)) return;
        if (!shrinking) {
            tally(chk, c);
            if (!f) {
                ++res.cases;
                if (opt.progress) opt.progress(res.cases, elapsed());
            }
        }
        if (f) {
            if (!shrinking)
                first_failure(*f);
            else
                ++shrink_steps;
            const std::string msg = std::string(f->gate->name) + ": " + f->verdict.summary;
            trace_shape(c);
            last_fail.emplace(c, std::move(chk));
            RC_FAIL(msg);
        }
    };
    auto check_property = [&](std::uint64_t seed, long long cases) {
        rc::detail::TestParams params;
        params.seed = seed;
        params.maxSuccess = static_cast<int>(cases);
        params.maxSize = 100;
        params.maxDiscardRatio = 20;
        params.disableShrinking = !opt.shrink;
        rc::detail::TestMetadata meta;
        meta.id = target.full_name();
        meta.description = target.full_name();
        QuietListener quiet;
        std::lock_guard<std::mutex> lock(rapidcheck_lock());
        rc::detail::checkProperty(rc::detail::toProperty(property), meta, params, quiet);
    };
    auto record_failure = [&](std::uint64_t seed) {
        const auto& [c, chk] = *last_fail;
        Counterexample ce = counterexample_of(target, c, *chk.failure());
        ce.seed = seed;
        ce.shrink_steps = shrink_steps;
        ce.shrink_trajectory = trajectory;
        res.failure = std::move(ce);
    };

    if (opt.drawer == Drawer::seeded) {
        // A target that takes its runs in batches gets its cases checked
        // that many at a time (check_cases); with a release, `interleave`
        // cases are checked side by side on fibers; the rest one by one.
        const bool batched = target.batch_size() > 1;
        const bool interleaved = !batched && opt.release && opt.interleave > 1;
        const size_t per_check = static_cast<size_t>(batched ? target.batch_size() : interleaved ? opt.interleave : 1);
        struct Drawn {
            Case c;
            ChoiceRecord record;
            std::uint64_t seed;
        };
        long long discarded_in_a_row = 0, i = 0;
        bool stop = false;
        while (!stop && res.cases + known_cases < opt.cases) {
            if (opt.seconds > 0 && elapsed() >= opt.seconds) break;
            std::vector<Drawn> drawn;
            while (drawn.size() < per_check &&
                   res.cases + known_cases + static_cast<long long>(drawn.size()) < opt.cases) {
                const std::uint64_t seed = case_seed(opt.seed, i++);
                SeededChooser seeded(seed);
                RecordingChooser rec(seeded);
                Case c = [&] {
                    ScopedPhase phase(Phase::generate);
                    return build_case(caps, opt.limits, rec);
                }();
                if (!target.unsupported(c).empty()) {
                    ++res.unsupported;
                    // everything discarded: nothing more to learn
                    if (++discarded_in_a_row > 1000) {
                        stop = true;
                        break;
                    }
                    continue;
                }
                discarded_in_a_row = 0;
                drawn.push_back({std::move(c), rec.record(), seed});
            }
            std::vector<CaseCheck> checks;
            if (batched) {
                std::vector<Case> cs;
                for (const Drawn& d : drawn) cs.push_back(d.c);
                checks = check_cases(target, cs, gates);
            } else if (interleaved) {
                checks.resize(drawn.size());
                std::vector<std::function<void()>> jobs;
                for (size_t k = 0; k < drawn.size(); ++k)
                    jobs.emplace_back([&, k] { checks[k] = check_case(target, drawn[k].c, gates); });
                run_interleaved(jobs, opt.release);
            } else {
                for (const Drawn& d : drawn) checks.push_back(check_case(target, d.c, gates));
            }
            for (size_t k = 0; k < drawn.size(); ++k) {
                const Case& c = drawn[k].c;
                const GateOutcome* f = checks[k].failure();
                if (known(c, f)) continue;
                tally(checks[k], c);
                if (!f) {
                    ++res.cases;
                    if (opt.progress) opt.progress(res.cases, elapsed());
                    continue;
                }
                first_failure(*f);
                trace_shape(c);
                last_fail.emplace(c, std::move(checks[k])); // stands if the rerun below does not fail (a flaky target)
                // RapidCheck shrinks from the recorded draws, case by case;
                // its first case is this one again, which is not a shrink step.
                gen = gen_replayed_case(caps, opt.limits, drawn[k].record);
                shrink_steps = -1;
                check_property(drawn[k].seed, 1);
                shrink_steps = std::max(shrink_steps, 0);
                record_failure(drawn[k].seed);
                stop = true;
                break;
            }
        }
        res.seconds = elapsed();
        return res;
    }

    for (std::uint64_t round = 0;; ++round) {
        const long long left = opt.cases - res.cases;
        if (left <= 0 || (opt.seconds > 0 && elapsed() >= opt.seconds)) break;
        const std::uint64_t seed = opt.seed + round * 0x9e3779b97f4a7c15ull;
        const long long before = res.cases;
        check_property(seed, std::min(left, std::max(1LL, opt.round)));
        if (last_fail) {
            record_failure(seed);
            break;
        }
        if (res.cases == before) break; // everything discarded: nothing more to learn
    }
    res.seconds = elapsed();
    return res;
}

} // namespace attncheck
