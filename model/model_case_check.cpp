#include "model/model_case_check.hpp"

#include <cmath>
#include <map>

#include <fmt/format.h>

#include "model/model_session.hpp"

namespace attncheck {

namespace {

// One row the schedule computed: its logits and their observed bound.
struct RowRecord {
    int step = 0;
    std::vector<float> logits;
    std::vector<double> bound;
};

} // namespace

ModelVerdict check_model_case(const ModelCase& c, Backend b, ModelMutant m) {
    validate(c);
    const ModelWeights w = random_weights(c.config, c.weights);
    const int V = c.config.vocab, L = c.config.layers;
    // One spare slot for the one-shot prefills of the decode_prefill gate.
    CheckedSession s(w, b, c.slots + 1, m);
    ModelVerdict v;
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
        ++v.calls;
        if (!rep.ok) {
            v.ok = false;
            v.gate = "stages";
            v.step = static_cast<int>(i);
            v.layer = rep.first->layer;
            v.stage = stage_name(rep.first->stage);
            v.summary = fmt::format("schedule step {} ({} attention): {}", i, out.attention, rep.summary());
            v.table = rep.table();
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
    // decode_prefill: every recorded row against a one-shot prefill of its slot's history.
    const int spare = c.slots;
    for (int slot = 0; slot < c.slots; ++slot) {
        const std::vector<int>& hist = s.history[static_cast<size_t>(slot)];
        if (hist.size() < 2 || rows[static_cast<size_t>(slot)].empty()) continue;
        s.reset(spare);
        const StepOutput one = s.run({{spare, hist}});
        const DivergenceReport r1 = s.check(one);
        ++v.calls;
        if (!r1.ok) {
            v.ok = false;
            v.gate = "stages";
            v.layer = r1.first->layer;
            v.stage = stage_name(r1.first->stage);
            v.summary = fmt::format("one-shot prefill of slot {} ({} tokens): {}", slot, hist.size(), r1.summary());
            v.table = r1.table();
            return v;
        }
        const std::vector<double>& b1 = r1.bound(L, Stage::logits);
        for (const auto& [pos, rec] : rows[static_cast<size_t>(slot)]) {
            ++v.rows_compared;
            for (int k = 0; k < V; ++k) {
                const double a = rec.logits[static_cast<size_t>(k)], o = one.logits[static_cast<size_t>(pos) * V + k];
                const double lim = rec.bound[static_cast<size_t>(k)] + b1[static_cast<size_t>(pos) * V + k];
                if (std::fabs(a - o) <= lim) continue;
                v.ok = false;
                v.gate = "decode_prefill";
                v.step = rec.step;
                v.summary = fmt::format(
                    "slot {} position {} (schedule step {}): logit {} is {:.9g} there and {:.9g} in a one-shot prefill "
                    "of the slot's {} tokens; |difference| {:.3g} exceeds the sum of both bounds {:.3g}",
                    slot, pos, rec.step, k, a, o, hist.size(), std::fabs(a - o), lim);
                return v;
            }
        }
    }
    v.summary =
        fmt::format("{} calls within their bounds; {} rows agree with one-shot prefills", v.calls, v.rows_compared);
    return v;
}

} // namespace attncheck
