#include "model/model_session.hpp"

#include <map>

#include "model/model_cpu.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "model/model_cuda.hpp"
#endif

namespace attncheck {

std::unique_ptr<ModelEngine> make_model_engine(const ModelWeights& w, Backend b, int slots, ModelMutant m) {
    if (b == Backend::cpu) return make_cpu_model(w, slots, m);
#ifdef ATTNCHECK_HAVE_CUDA
    return make_cuda_model(w, slots, m);
#else
    throw ModelError("the CUDA model engine is not built (no nvcc at configure time)");
#endif
}

CheckedSession::CheckedSession(ModelWeights weights, Backend b, int slots, ModelMutant m)
    : CheckedSession(weights, make_model_engine(weights, b, slots, m), b) {}

CheckedSession::CheckedSession(ModelWeights weights, std::unique_ptr<ModelEngine> e, Backend b)
    : w(std::move(weights)),
      engine(std::move(e)),
      prec(model_precision(w.config, b)),
      history(static_cast<size_t>(engine->slots())) {}

void CheckedSession::reset(int slot) {
    engine->reset(slot);
    history[static_cast<size_t>(slot)].clear();
    ledger.reset(slot);
}

StepOutput CheckedSession::run(const std::vector<SeqChunk>& batch, ForwardOptions o) {
    o.trace = true;
    StepOutput out = engine->forward(batch, o);
    for (const auto& ch : batch) {
        auto& h = history[static_cast<size_t>(ch.seq)];
        h.insert(h.end(), ch.tokens.begin(), ch.tokens.end());
    }
    return out;
}

DivergenceReport CheckedSession::check(const StepOutput& out) {
    std::map<int, OracleTrace> oracles;
    std::map<int, const OracleTrace*> ptrs;
    for (const auto& [slot, pos] : out.rows)
        if (!oracles.count(slot)) oracles.emplace(slot, model_oracle_forward(w, history[static_cast<size_t>(slot)]));
    for (const auto& [slot, o] : oracles) ptrs[slot] = &o;
    DivergenceReport r = check_forward(w, *out.trace, ptrs, prec, &ledger);
    ledger.record(w.config, *out.trace, r);
    return r;
}

} // namespace attncheck
