// An engine plus what checking its calls needs: the token history of each
// slot (the oracle recomputes a slot from scratch), the precision it is
// judged under, and the ledger of the bounds each cached K/V position was
// appended under. Every call is traced; check() judges one call against the
// fp64 oracle with the per-layer divergence report. Used by the model tests
// and by the model campaign (model/model_campaign.hpp).
#pragma once

#include <memory>
#include <vector>

#include "model/model_engine.hpp"
#include "model/oracle/model_oracle_check.hpp"

namespace attncheck {

// The engine of a backend (CUDA only in builds with it; ModelError otherwise).
std::unique_ptr<ModelEngine> make_model_engine(const ModelWeights& w, Backend b, int slots,
                                               ModelMutant m = ModelMutant::none);

class CheckedSession {
public:
    CheckedSession(ModelWeights weights, Backend b, int slots, ModelMutant m = ModelMutant::none);
    CheckedSession(ModelWeights weights, std::unique_ptr<ModelEngine> engine, Backend b);

    ModelWeights w;
    std::unique_ptr<ModelEngine> engine;
    ModelPrecision prec;
    std::vector<std::vector<int>> history; // tokens of each slot since its reset
    CacheLedger ledger;

    void reset(int slot);
    // One traced call; the tokens join their slots' histories.
    StepOutput run(const std::vector<SeqChunk>& batch, ForwardOptions o = {});
    // Checks a traced call against the oracle and records its K/V bounds in
    // the ledger (call once per run, in order).
    DivergenceReport check(const StepOutput& out);
};

} // namespace attncheck
