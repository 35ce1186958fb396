#include "properties/campaign/external_model_check.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "model/model_engine.hpp"
#include "model/oracle/model_oracle.hpp"
#include "model/oracle/model_oracle_check.hpp"

namespace attncheck {

namespace {

struct Row {
    int step = 0;
    std::vector<float> logits;
};

// |a - b| <= scale * bound, NaN failing; the first index that breaks it or -1.
template <class A, class B>
int first_outside(const A* a, const B* b, const double* bound, int n, double scale = 1.0) {
    for (int i = 0; i < n; ++i)
        if (!(std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])) <= scale * bound[i])) return i;
    return -1;
}

// The gates; an adapter's ModelError passes through, with `running` naming
// the gate whose call it was.
ModelVerdict check_or_throw(const ModelCase& c, ModelAdapter& a, const char*& running) {
    const ModelWeights w = random_weights(c.config, c.weights);
    const int V = c.config.vocab, L = c.config.layers;
    ModelPrecision prec = transformers_fp32_precision(c.config);
    prec.attn = transformers_fp32_attention_profile();
    ModelVerdict v;
    const int spare = c.slots;
    try {
        a.load(w, c.slots + 1);
    } catch (const UnsupportedModel& e) {
        v.skipped = true;
        v.summary = e.what();
        return v;
    }
    std::vector<std::vector<int>> history(static_cast<size_t>(c.slots));
    std::vector<std::map<int, Row>> rows(static_cast<size_t>(c.slots)); // slot -> position -> latest row there
    for (size_t i = 0; i < c.schedule.size(); ++i) {
        const ModelStep& st = c.schedule[i];
        if (st.reset) {
            a.reset(st.reset_slot);
            history[static_cast<size_t>(st.reset_slot)].clear();
            rows[static_cast<size_t>(st.reset_slot)].clear();
            continue;
        }
        const std::vector<float> logits = a.forward(st.batch);
        ++v.calls;
        size_t r = 0;
        for (const SeqChunk& ch : st.batch) {
            auto& h = history[static_cast<size_t>(ch.seq)];
            for (int tok : ch.tokens) {
                Row& row = rows[static_cast<size_t>(ch.seq)][static_cast<int>(h.size())];
                row.step = static_cast<int>(i);
                row.logits.assign(logits.begin() + static_cast<long>(r * V),
                                  logits.begin() + static_cast<long>((r + 1) * V));
                h.push_back(tok);
                ++r;
            }
        }
    }
    double& worst = v.stage_worst[static_cast<size_t>(Stage::logits)];
    for (int slot = 0; slot < c.slots; ++slot) {
        const std::vector<int>& hist = history[static_cast<size_t>(slot)];
        if (hist.empty()) continue;
        running = "logits";
        a.reset(spare);
        const std::vector<float> one = a.forward({{spare, hist}});
        ++v.calls;
        const OracleTrace oracle = model_oracle_forward(w, hist);
        const OracleTrace bound = apriori_bounds(w, oracle, prec);
        for (size_t pos = 0; pos < hist.size(); ++pos) {
            const float* got = &one[pos * V];
            const double* want = oracle.row(L, Stage::logits, static_cast<int>(pos), V);
            const double* b = bound.row(L, Stage::logits, static_cast<int>(pos), V);
            for (int k = 0; k < V; ++k)
                if (b[k] > 0 && std::isfinite(b[k])) worst = std::max(worst, std::fabs(got[k] - want[k]) / b[k]);
            const int k = first_outside(got, want, b, V);
            if (k < 0) continue;
            v.ok = false;
            v.gate = "logits";
            v.stage = "logits";
            v.summary = fmt::format(
                "slot {}'s {} tokens prefilled in one shot: logit {} at position {} is {:.9g}, the oracle's {:.9g}; "
                "|difference| {:.3g} exceeds the a-priori bound {:.3g} of an fp32 forward",
                slot, hist.size(), k, pos, got[k], want[k], std::fabs(got[k] - want[k]), b[k]);
            return v;
        }
        running = "decode_prefill";
        for (const auto& [pos, row] : rows[static_cast<size_t>(slot)]) {
            ++v.rows_compared;
            const double* b = bound.row(L, Stage::logits, pos, V);
            const float* one_row = &one[static_cast<size_t>(pos) * V];
            const int k = first_outside(row.logits.data(), one_row, b, V, 2.0);
            if (k < 0) continue;
            v.ok = false;
            v.gate = "decode_prefill";
            v.stage = "logits";
            v.step = row.step;
            v.summary = fmt::format(
                "slot {} position {} (schedule step {}): logit {} is {:.9g} there and {:.9g} in a one-shot prefill of "
                "the slot's {} tokens; |difference| {:.3g} exceeds the sum of both a-priori bounds {:.3g}",
                slot, pos, row.step, k, row.logits[static_cast<size_t>(k)], one_row[k], hist.size(),
                std::fabs(row.logits[static_cast<size_t>(k)] - one_row[k]), 2 * b[k]);
            return v;
        }
    }
    v.summary = fmt::format(
        "{} calls; one-shot prefills within the a-priori bound of the oracle (worst {:.3g} of it); "
        "{} rows agree with them",
        v.calls, worst, v.rows_compared);
    return v;
}

} // namespace

ModelVerdict check_external_model_case(const ModelCase& c, ModelAdapter& a) {
    validate(c);
    const char* running = "decode_prefill"; // the schedule's calls; the one-shot prefills are the logits gate's
    try {
        return check_or_throw(c, a, running);
    } catch (const ModelError& e) { // the adapter failed: the gate that was running fails with its message
        ModelVerdict v;
        v.ok = false;
        v.gate = running;
        v.summary = e.what();
        return v;
    }
}

} // namespace attncheck
