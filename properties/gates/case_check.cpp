#include "properties/gates/case_check.hpp"

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
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

CaseCheck check_case(Target& target, const Case& c, const std::vector<const Gate*>& gates, bool stop_at_first) {
    ScopedPhase phase(Phase::gates); // what the target and the oracle do inside is charged to them
    CaseCheck out;
    GateContext ctx(target, c);
    for (const Gate* g : gates) {
        const auto t0 = std::chrono::steady_clock::now();
        GateVerdict v;
        try {
            v = g->check(ctx);
        } catch (const UnsupportedCase& e) {
            v = GateVerdict::skip(std::string("unsupported: ") + e.what());
        } catch (const OracleDisagreement&) {
            throw; // the judge is wrong, not the target: stop the run
        } catch (const std::exception& e) {
            v = GateVerdict::fail(std::string("the target threw: ") + e.what());
        }
        out.outcomes.push_back(
            {g, std::move(v), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
        if (stop_at_first && out.outcomes.back().verdict.status == GateStatus::fail) break;
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
