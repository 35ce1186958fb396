// The divergence report: a traced engine call against the oracle of each
// sequence it touched, every element of every stage judged under the
// observed bound (model_bound_sources.cpp), the first (layer, stage) out of
// bound named; the cache ledger that carries the bounds of cached positions
// from call to call; and the greedy-decision test on logits.
#include "model/oracle/model_oracle_check.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "model/oracle/model_bound_propagation.hpp"

namespace attncheck {

namespace {

using model_bounds::bounds_index;
using model_bounds::kInf;

void judge(StageCheck& sc, double eng, double orc, double b, int seq, int pos, int index) {
    ++sc.elements;
    const double err = std::fabs(eng - orc);
    double ratio;
    if (!std::isfinite(eng) && std::isfinite(orc))
        ratio = kInf;
    else if (!std::isfinite(b)) {
        ++sc.unchecked;
        return;
    } else
        ratio = err > b ? (b > 0 ? err / b : kInf) : (b > 0 ? err / b : 0.0);
    const bool bad = !(ratio <= 1.0);
    if (bad) ++sc.violations;
    // Keep the worst element; among violations, the worst one too.
    if (ratio > sc.worst_ratio || sc.index < 0) {
        sc.worst_ratio = std::max(sc.worst_ratio, ratio);
        sc.seq = seq;
        sc.pos = pos;
        sc.index = index;
        sc.engine = eng;
        sc.oracle = orc;
        sc.bound = b;
    }
}

} // namespace

DivergenceReport check_forward(const ModelWeights& w, const ModelTrace& et,
                               const std::map<int, const OracleTrace*>& oracle_by_slot, const ModelPrecision& P,
                               const CacheLedger* ledger) {
    const ModelConfig& c = w.config;
    if (et.layers != c.layers || et.values.empty())
        throw std::invalid_argument("check_forward: the engine call was not traced");
    std::vector<model_bounds::Row> rows;
    for (const auto& [slot, pos] : et.rows) {
        auto it = oracle_by_slot.find(slot);
        if (it == oracle_by_slot.end() || !it->second)
            throw std::invalid_argument(fmt::format("check_forward: no oracle for sequence slot {}", slot));
        if (pos >= it->second->len)
            throw std::invalid_argument(
                fmt::format("check_forward: oracle of slot {} has {} positions, the engine computed position {}", slot,
                            it->second->len, pos));
        rows.push_back({it->second, pos});
    }
    model_bounds::Bounds B = model_bounds::observed_bounds(w, et, rows, P);
    // A-priori bounds only for slots with cached positions no ledger covers
    // (computed lazily: on the 0.5B shape each costs a full forward).
    std::map<int, OracleTrace> apr;
    auto apriori_of = [&](int slot) -> const OracleTrace& {
        auto it = apr.find(slot);
        if (it == apr.end()) it = apr.emplace(slot, apriori_bounds(w, *oracle_by_slot.at(slot), P)).first;
        return it->second;
    };

    DivergenceReport rep;
    auto check_stage = [&](int layer, Stage s) {
        StageCheck sc;
        sc.layer = stage_is_global(s) ? (s == Stage::embed ? -1 : c.layers) : layer;
        sc.stage = s;
        if (s == Stage::kv_cache) {
            const AttentionProblem& pb = et.attn[static_cast<size_t>(layer)];
            const int KD = c.kv_dim();
            for (size_t b = 0; b < pb.kv_lens.size(); ++b) {
                const int slot = et.attn_seq_ids[static_cast<size_t>(layer)][b];
                const OracleTrace& o = *oracle_by_slot.at(slot);
                const int first_new = pb.kv_lens[b] - pb.q_lens[b];
                for (int j = 0; j < pb.kv_lens[b]; ++j) {
                    // Row of this call holding position j, if any.
                    int row = -1;
                    for (size_t r = 0; r < et.rows.size(); ++r)
                        if (et.rows[r].first == slot && et.rows[r].second == j) row = static_cast<int>(r);
                    for (int which = 0; which < 2; ++which) {
                        const Stage st = which ? Stage::v : Stage::k_rope;
                        const float* e = &(which ? pb.v : pb.k)[static_cast<size_t>(pb.kv_start[b] + j) * KD];
                        const double* orc = o.row(layer, st, j, KD);
                        const double* bnd = nullptr;
                        if (j >= first_new && row >= 0)
                            bnd = &B[bounds_index(c, layer, st)][static_cast<size_t>(row) * KD];
                        else if (ledger) {
                            const auto& m = which ? ledger->v : ledger->k;
                            auto it = m.find(slot);
                            if (it != m.end() &&
                                it->second[static_cast<size_t>(layer)].size() >= static_cast<size_t>(j + 1) * KD)
                                bnd = &it->second[static_cast<size_t>(layer)][static_cast<size_t>(j) * KD];
                        }
                        if (!bnd) bnd = apriori_of(slot).row(layer, st, j, KD);
                        for (int i = 0; i < KD; ++i) judge(sc, e[i], orc[i], bnd[i], slot, j, which * KD + i);
                    }
                }
            }
        } else {
            const int wdt = stage_width(c, s);
            const auto& ev = et.at(layer, s);
            const auto& bv = B[bounds_index(c, layer, s)];
            for (size_t r = 0; r < rows.size(); ++r) {
                const double* orc = rows[r].o->row(layer, s, rows[r].pos, wdt);
                for (int i = 0; i < wdt; ++i)
                    judge(sc, ev[r * wdt + i], orc[i], bv[r * wdt + i], et.rows[r].first, rows[r].pos, i);
            }
        }
        rep.unchecked += sc.unchecked;
        if (sc.violations && !rep.first) rep.first = sc;
        rep.stages.push_back(sc);
    };
    check_stage(c.layers, Stage::embed);
    for (int l = 0; l < c.layers; ++l)
        for (Stage s : {Stage::attn_norm, Stage::q, Stage::k, Stage::v, Stage::q_rope, Stage::k_rope, Stage::kv_cache,
                        Stage::attn_out, Stage::o_proj, Stage::resid_attn, Stage::ffn_norm, Stage::gate, Stage::up,
                        Stage::act, Stage::down, Stage::resid_ffn})
            check_stage(l, s);
    check_stage(c.layers, Stage::final_norm);
    check_stage(c.layers, Stage::logits);
    rep.ok = !rep.first.has_value();
    rep.layers = c.layers;
    rep.bounds = std::move(B);
    return rep;
}

void CacheLedger::record(const ModelConfig& c, const ModelTrace& t, const DivergenceReport& r) {
    const int KD = c.kv_dim();
    for (int which = 0; which < 2; ++which) {
        auto& m = which ? v : k;
        const Stage st = which ? Stage::v : Stage::k_rope;
        for (size_t row = 0; row < t.rows.size(); ++row) {
            const auto [slot, pos] = t.rows[row];
            auto& layers = m[slot];
            layers.resize(static_cast<size_t>(c.layers));
            for (int l = 0; l < c.layers; ++l) {
                auto& dst = layers[static_cast<size_t>(l)];
                if (dst.size() < static_cast<size_t>(pos + 1) * KD) dst.resize(static_cast<size_t>(pos + 1) * KD, kInf);
                std::copy_n(&r.bound(l, st)[row * KD], KD, &dst[static_cast<size_t>(pos) * KD]);
            }
        }
    }
}

std::string DivergenceReport::summary() const {
    if (ok) {
        double worst = 0;
        for (const auto& s : stages) worst = std::max(worst, s.worst_ratio);
        return fmt::format(
            "every stage within its bound (worst error/bound {:.3g}; {} elements without a meaningful bound)", worst,
            unchecked);
    }
    const StageCheck& f = *first;
    const std::string where = f.layer < 0 ? "embedding"
                              : f.stage == Stage::final_norm || f.stage == Stage::logits
                                  ? "head"
                                  : fmt::format("layer {}", f.layer);
    return fmt::format(
        "first divergence: {}, stage {}: {} of {} elements out of bound; worst at sequence {} position {} "
        "index {}: engine {:.9g}, oracle {:.9g}, |diff| {:.3g} > bound {:.3g} ({:.3g}x)",
        where, stage_name(f.stage), f.violations, f.elements, f.seq, f.pos, f.index, f.engine, f.oracle,
        std::fabs(f.engine - f.oracle), f.bound, f.worst_ratio);
}

std::string DivergenceReport::table() const {
    std::string s =
        fmt::format("{:>6} {:>11} {:>12} {:>10} {:>10}\n", "layer", "stage", "worst e/b", "violations", "unchecked");
    for (const auto& c : stages)
        s += fmt::format("{:>6} {:>11} {:>12.3g} {:>10} {:>10}\n", c.layer, stage_name(c.stage), c.worst_ratio,
                         c.violations, c.unchecked);
    return s;
}

bool greedy_decided(const double* z, const double* b, int vocab, int* top) {
    int t = 0;
    for (int j = 1; j < vocab; ++j)
        if (z[j] > z[t]) t = j;
    if (top) *top = t;
    for (int j = 0; j < vocab; ++j)
        if (j != t && !(z[t] - b[t] > z[j] + b[j])) return false;
    return true;
}

} // namespace attncheck
