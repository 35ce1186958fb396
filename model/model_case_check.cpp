#include "model/model_case_check.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "kernels/flash_prefill/flash_prefill.hpp"
#include "model/model_session.hpp"

namespace attncheck {

namespace {

// One row the schedule computed: its logits and their observed bound.
struct RowRecord {
    int step = 0;
    std::vector<float> logits;
    std::vector<double> bound;
};

// The first index where |a - b| exceeds ba + bb (-1 if none): two calls,
// each within its own bound of the same oracle, differ by at most the sum.
template <class T>
int first_disagreement(const T* a, const double* ba, const T* b, const double* bb, int n) {
    for (int i = 0; i < n; ++i)
        if (!(std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])) <= ba[i] + bb[i])) return i;
    return -1;
}

} // namespace

ModelVerdict check_model_case(const ModelCase& c, Backend b, ModelMutant m) {
    validate(c);
    const ModelWeights w = random_weights(c.config, c.weights);
    const int V = c.config.vocab, L = c.config.layers;
    // One spare slot for the one-shot prefills of the decode_prefill gate.
    CheckedSession s(w, b, c.slots + 1, m);
    ModelVerdict v;
    auto stages_failed = [&](const DivergenceReport& rep, const std::string& where) {
        v.ok = false;
        v.gate = "stages";
        v.layer = rep.first->layer;
        v.stage = stage_name(rep.first->stage);
        v.summary = where + ": " + rep.summary();
        v.table = rep.table();
    };
    auto note = [&](const DivergenceReport& rep) {
        for (const StageCheck& sc : rep.stages) {
            double& w = v.stage_worst[static_cast<size_t>(sc.stage)];
            w = std::max(w, sc.worst_ratio);
        }
    };
    // rows[slot][position]: the latest row the schedule computed there.
    std::vector<std::map<int, RowRecord>> rows(static_cast<size_t>(c.slots));
    for (size_t i = 0; i < c.schedule.size(); ++i) {
        const ModelStep& st = c.schedule[i];
        if (st.reset) {
            s.reset(st.reset_slot);
            rows[static_cast<size_t>(st.reset_slot)].clear();
            continue;
        }
        ForwardOptions o;
        o.attention = st.attention;
        o.num_splits = st.num_splits;
        const StepOutput out = s.run(st.batch, o);
        const DivergenceReport rep = s.check(out);
        note(rep);
        ++v.calls;
        if (!rep.ok) {
            v.step = static_cast<int>(i);
            stages_failed(rep, fmt::format("schedule step {} ({} attention)", i, out.attention));
            return v;
        }
        const std::vector<double>& lb = rep.bound(L, Stage::logits);
        for (size_t r = 0; r < out.rows.size(); ++r) {
            const auto [slot, pos] = out.rows[r];
            RowRecord rec;
            rec.step = static_cast<int>(i);
            rec.logits.assign(out.logits.begin() + static_cast<long>(r * V),
                              out.logits.begin() + static_cast<long>((r + 1) * V));
            rec.bound.assign(lb.begin() + static_cast<long>(r * V), lb.begin() + static_cast<long>((r + 1) * V));
            rows[static_cast<size_t>(slot)][pos] = std::move(rec);
        }
    }
    // decode_prefill and families: one-shot prefills of each slot's history on the spare slot.
    const int spare = c.slots;
    auto one_shot = [&](const std::vector<int>& hist, const std::string& attention, int slot, StepOutput& out,
                        DivergenceReport& rep) {
        s.reset(spare);
        out = s.run({{spare, hist}}, {.attention = attention});
        rep = s.check(out);
        note(rep);
        ++v.calls;
        if (rep.ok) return true;
        stages_failed(rep, fmt::format("one-shot prefill of slot {} ({} tokens, {} attention)", slot, hist.size(),
                                       out.attention));
        return false;
    };
    for (int slot = 0; slot < c.slots; ++slot) {
        const std::vector<int>& hist = s.history[static_cast<size_t>(slot)];
        if (hist.size() < 2) continue;
        StepOutput one;
        DivergenceReport r1;
        if (!one_shot(hist, "auto", slot, one, r1)) return v;
        const std::vector<double>& b1 = r1.bound(L, Stage::logits);
        for (const auto& [pos, rec] : rows[static_cast<size_t>(slot)]) {
            ++v.rows_compared;
            const int k =
                first_disagreement(rec.logits.data(), rec.bound.data(), &one.logits[static_cast<size_t>(pos) * V],
                                   &b1[static_cast<size_t>(pos) * V], V);
            if (k < 0) continue;
            const double a = rec.logits[static_cast<size_t>(k)], o = one.logits[static_cast<size_t>(pos) * V + k];
            v.ok = false;
            v.gate = "decode_prefill";
            v.step = rec.step;
            v.summary = fmt::format(
                "slot {} position {} (schedule step {}): logit {} is {:.9g} there and {:.9g} in a one-shot prefill of "
                "the slot's {} tokens; |difference| {:.3g} exceeds the sum of both bounds {:.3g}",
                slot, pos, rec.step, k, a, o, hist.size(), std::fabs(a - o),
                rec.bound[static_cast<size_t>(k)] + b1[static_cast<size_t>(pos) * V + k]);
            return v;
        }
        // families: the same prefill through the other prefill family, layer by layer.
        const std::string other = one.attention != "standard_path"                        ? "standard_path"
                                  : kernels::flash::head_dim_supported(c.config.head_dim) ? "flash_prefill"
                                                                                          : "";
        if (other.empty()) continue;
        StepOutput two;
        DivergenceReport r2;
        if (!one_shot(hist, other, slot, two, r2)) return v;
        for (int l = 0; l <= L; ++l)
            for (Stage st : {Stage::attn_out, Stage::resid_ffn, Stage::logits}) {
                if ((l == L) != (st == Stage::logits)) continue; // logits: the global slot only
                const int width = stage_width(c.config, st);
                const auto &A = one.trace->at(l, st), &B = two.trace->at(l, st);
                const auto &bA = r1.bound(l, st), &bB = r2.bound(l, st);
                for (size_t t = 0; t < hist.size(); ++t) {
                    const size_t at = t * static_cast<size_t>(width);
                    const int k = first_disagreement(&A[at], &bA[at], &B[at], &bB[at], width);
                    if (k < 0) continue;
                    v.ok = false;
                    v.gate = "families";
                    v.layer = l == L ? -1 : l;
                    v.stage = stage_name(st);
                    v.summary = fmt::format(
                        "slot {}'s {} tokens prefilled through {} and through {}: {} of layer {} at position {} index "
                        "{} is {:.9g} vs {:.9g}, beyond the sum of both bounds {:.3g}",
                        slot, hist.size(), one.attention, two.attention, stage_name(st), l, t, k, A[at + k], B[at + k],
                        bA[at + k] + bB[at + k]);
                    return v;
                }
            }
        ++v.family_pairs;
    }
    v.summary = fmt::format(
        "{} calls within their bounds; {} rows agree with one-shot prefills; {} prefills agree "
        "through two attention families",
        v.calls, v.rows_compared, v.family_pairs);
    return v;
}

} // namespace attncheck
