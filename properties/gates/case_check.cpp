#include "properties/gates/case_check.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/timing/phase_timer.hpp"
#include "properties/campaign/generators.hpp"
#include "properties/gates/gate_util.hpp"

namespace attncheck {

const GateOutcome* CaseCheck::failure() const {
    for (const auto& o : outcomes)
        if (o.verdict.status == GateStatus::fail) return &o;
    return nullptr;
}

std::vector<const Gate*> gate_pointers(const std::vector<std::string>& names) {
    std::vector<const Gate*> out;
    if (names.empty()) {
        for (const Gate& g : all_gates()) out.push_back(&g);
        return out;
    }
    for (const auto& n : names) {
        const Gate* g = find_gate(n);
        if (!g) throw std::invalid_argument(fmt::format("unknown gate '{}' (attncheck list shows them)", n));
        out.push_back(g);
    }
    return out;
}

namespace {

// One gate on a context; the verdict, or nothing when a batched context
// deferred it (RunDeferred passes through).
GateVerdict play_gate(const Gate& g, GateContext& ctx) {
    try {
        return g.check(ctx);
    } catch (const UnsupportedCase& e) {
        return GateVerdict::skip(std::string("unsupported: ") + e.what());
    } catch (const OracleDisagreement&) {
        throw; // the judge is wrong, not the target: stop the run
    } catch (const std::exception& e) {
        return GateVerdict::fail(std::string("the target threw: ") + e.what());
    }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

CaseCheck check_case(Target& target, const Case& c, const std::vector<const Gate*>& gates, bool stop_at_first) {
    ScopedPhase phase(Phase::gates); // what the target and the oracle do inside is charged to them
    CaseCheck out;
    GateContext ctx(target, c);
    for (const Gate* g : gates) {
        const auto t0 = std::chrono::steady_clock::now();
        GateVerdict v = play_gate(*g, ctx);
        out.outcomes.push_back({g, std::move(v), seconds_since(t0)});
        if (stop_at_first && out.outcomes.back().verdict.status == GateStatus::fail) break;
    }
    return out;
}

std::vector<CaseCheck> check_cases(Target& target, const std::vector<Case>& cases,
                                   const std::vector<const Gate*>& gates, bool stop_at_first) {
    ScopedPhase phase(Phase::gates);
    const size_t n = cases.size(), ng = gates.size();
    std::vector<std::unique_ptr<GateContext>> ctx;
    for (const Case& c : cases) {
        ctx.push_back(std::make_unique<GateContext>(target, c));
        ctx.back()->set_batched();
    }
    std::vector<std::vector<std::optional<GateVerdict>>> verdicts(n, std::vector<std::optional<GateVerdict>>(ng));
    std::vector<std::vector<double>> seconds(n, std::vector<double>(ng, 0.0));
    const size_t batch = static_cast<size_t>(std::max(1, target.batch_size()));
    for (;;) {
        for (size_t i = 0; i < n; ++i)
            for (size_t g = 0; g < ng; ++g) {
                if (verdicts[i][g]) continue;
                const auto t0 = std::chrono::steady_clock::now();
                ctx[i]->begin_gate(static_cast<int>(g));
                try {
                    verdicts[i][g] = play_gate(*gates[g], *ctx[i]);
                } catch (const RunDeferred&) {}
                seconds[i][g] += seconds_since(t0);
            }
        std::vector<std::pair<size_t, GateContext::PendingRun>> pending;
        for (size_t i = 0; i < n; ++i)
            for (auto& r : ctx[i]->take_pending()) pending.emplace_back(i, std::move(r));
        if (pending.empty()) break;
        for (size_t b = 0; b < pending.size(); b += batch) {
            const size_t e = std::min(pending.size(), b + batch);
            std::vector<RunRequest> runs;
            for (size_t k = b; k < e; ++k) runs.push_back({&pending[k].second.problem, pending[k].second.probe});
            std::vector<RunAnswer> answers;
            {
                ScopedPhase target_phase(Phase::target);
                answers = target.run_batch(runs);
            }
            if (answers.size() != runs.size())
                throw std::runtime_error(fmt::format("{}: run_batch answered {} of {} runs", target.full_name(),
                                                     answers.size(), runs.size()));
            for (size_t k = b; k < e; ++k)
                ctx[pending[k].first]->answer(pending[k].second.key, std::move(answers[k - b]));
        }
    }
    std::vector<CaseCheck> out(n);
    for (size_t i = 0; i < n; ++i)
        for (size_t g = 0; g < ng; ++g) {
            out[i].outcomes.push_back({gates[g], std::move(*verdicts[i][g]), seconds[i][g]});
            if (stop_at_first && out[i].outcomes.back().verdict.status == GateStatus::fail) break;
        }
    return out;
}

namespace {

// The stages of the probed row, in the order a kernel forms them and the
// report lists them: the first one outside its bound is the one named.
enum class RowStage { raw, scaled, masked, row_max, exps, row_sum, p, o, count_ };
constexpr std::size_t kRowStages = static_cast<std::size_t>(RowStage::count_);
constexpr const char* kRowStageNames[kRowStages] = {"raw scores q.k", "scaled",  "masked", "row max",
                                                    "exponentials",   "row sum", "P",      "O"};

struct StageLine {
    double err = 0, bound = 0; // largest err/bound element
    bool recorded = true, ok = true;
    std::string note;
    void add(double e, double b) {
        if (std::isnan(e)) e = INFINITY;
        if (!(e <= b)) ok = false;
        if (e / std::max(b, 1e-300) >= err / std::max(bound, 1e-300) || (err == 0 && bound == 0)) {
            err = e;
            bound = b;
        }
    }
};

// One line per stage, looked up by stage.
struct StageLines {
    std::array<StageLine, kRowStages> lines;
    StageLine& operator[](RowStage s) { return lines[static_cast<std::size_t>(s)]; }
};

} // namespace

std::string stage_report(Target& target, const AttentionProblem& p, const PrecisionProfile& prof, ProbeRequest row) {
    if (!probe_row_in_problem(p, row)) {
        const auto r = default_probe_row(p);
        if (!r) return "  (no row with visible keys to probe)\n";
        row = *r;
    }
    Observation obs;
    try {
        obs = target.run(p, row);
    } catch (const std::exception& e) {
        return fmt::format("  (probe run threw: {})\n", e.what());
    }
    if (!obs.probe) return "  (the target records no probe)\n";
    const ProbeTrace& t = *obs.probe;
    const auto ref = reference_row<double>(p, row.seq, row.head, row.token);
    const RowBound rb = bound_row(p, row.seq, row.head, row.token, prof);
    const int n = p.kv_lens[row.seq];
    std::string out = fmt::format("  probed {} ({} keys, {} visible)\n", row_name(row), n, ref.n_visible);
    if (rb.masked) return out + "  (row fully masked: O = 0, LSE = -inf expected)\n";
    if (!rb.meaningful || !rb.finite_input)
        out +=
            "  note: the row's bound is outside its meaningful range or its inputs are not finite; stage bounds are "
            "indicative\n";
    const double scale = std::fabs(p.scale) > 0 ? std::fabs(p.scale) : 1.0;
    StageLines st;
    double smax = 0;
    for (int j = 0; j < n; ++j) {
        const double sb = j < static_cast<int>(rb.s.size()) ? rb.s[j] : 0.0;
        smax = std::max(smax, sb);
        if (std::isnan(t.raw[j]))
            st[RowStage::raw].recorded = false;
        else
            st[RowStage::raw].add(std::fabs(t.raw[j] - ref.raw[j]), sb / scale);
        if (std::isnan(t.scaled[j]))
            st[RowStage::scaled].recorded = false;
        else
            st[RowStage::scaled].add(std::fabs(t.scaled[j] - ref.scaled[j]), sb);
        const bool tv = std::isfinite(t.masked[j]);
        if (tv != static_cast<bool>(ref.visible[j])) {
            st[RowStage::masked].ok = false;
            if (st[RowStage::masked].note.empty())
                st[RowStage::masked].note =
                    fmt::format("key {}: {} by the target, {} by the oracle (value {:.6g})", j,
                                tv ? "visible" : "masked", ref.visible[j] ? "visible" : "masked", t.masked[j]);
        } else if (tv) {
            st[RowStage::masked].add(std::fabs(t.masked[j] - ref.masked[j]), sb);
        }
        if (ref.visible[j]) {
            st[RowStage::exps].add(std::fabs(t.exps[j] - ref.exps[j]),
                                   rb.rho_p * ref.exps[j] + 4 * prof.u_acc * ref.exps[j]);
            st[RowStage::p].add(std::fabs(t.p[j] - ref.p[j]),
                                (j < static_cast<int>(rb.p.size()) ? rb.p[j] : 0.0) + 4 * prof.u_acc * ref.p[j]);
        } else if (t.p[j] != 0.0f) {
            st[RowStage::p].add(std::fabs(t.p[j]), 0.0);
        }
    }
    st[RowStage::row_max].add(std::fabs(t.row_max - ref.row_max), smax);
    if (t.max_exp > 1.0f) {
        st[RowStage::exps].ok = false;
        st[RowStage::exps].note = fmt::format("largest exponential {:.6g} > 1", t.max_exp);
    }
    st[RowStage::row_sum].add(std::fabs(t.row_sum - ref.row_sum), (rb.rho_p + 4 * prof.u_acc) * ref.row_sum);
    for (int c = 0; c < p.head_dim; ++c) st[RowStage::o].add(std::fabs(t.o[c] - ref.o[c]), rb.o[c]);
    const char* first = nullptr; // name of the first stage outside the error model
    for (std::size_t i = 0; i < kRowStages; ++i) {
        const StageLine& s = st.lines[i];
        const char* name = kRowStageNames[i];
        if (!s.recorded) {
            out += fmt::format("  {:16} not recorded by this target\n", name);
            continue;
        }
        out += fmt::format("  {:16} {:4}  worst error {:.3g} (bound {:.3g}){}\n", name, s.ok ? "ok" : "LEFT", s.err,
                           s.bound, s.note.empty() ? "" : "  " + s.note);
        if (!s.ok && !first) first = name;
    }
    if (!t.tile_max.empty()) out += fmt::format("  per-tile running max: {:.6g}\n", fmt::join(t.tile_max, ", "));
    if (!t.split_max.empty())
        out += fmt::format("  per-split max: {:.6g}; sums {:.6g}\n", fmt::join(t.split_max, ", "),
                           fmt::join(t.split_sum, ", "));
    out += first ? fmt::format("  first stage outside the error model: {}\n", first)
                 : "  every probed stage of this row is inside the error model\n";
    return out;
}

std::string failure_report(Target& target, const Case& c, const GateOutcome& failed) {
    std::string out = fmt::format("gate {} FAILED on {}\n  case: {}\n  {}\n", failed.gate->name, target.full_name(),
                                  case_shape_summary(c), failed.verdict.summary);
    for (const auto& d : failed.verdict.details) out += "  " + d + "\n";
    const AttentionProblem p = materialize(c);
    out += "stages:\n";
    out += stage_report(target, p, target.profile(c), failed.verdict.row.value_or(ProbeRequest{-1, -1, -1}));
    return out;
}

} // namespace attncheck
