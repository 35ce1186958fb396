// Shared by the model tests: the engine under test (CPU, or CUDA when built
// with ATTNCHECK_TEST_CUDA), a session that remembers each slot's token
// history, and the oracle check of a traced call.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/case/rng.hpp"
#include "model/model_cpu.hpp"
#include "model/oracle/model_oracle_check.hpp"
#if defined(ATTNCHECK_TEST_CUDA) && defined(ATTNCHECK_HAVE_CUDA)
#include "engine/cuda/device.hpp"
#include "model/model_cuda.hpp"
#endif

namespace attncheck::model_test {

#ifdef ATTNCHECK_TEST_CUDA
inline constexpr Backend kBackend = Backend::cuda;
// Empty when a device is usable; otherwise why the test skips.
inline std::string skip_reason() {
#ifndef ATTNCHECK_HAVE_CUDA
    return "CUDA backend not built (no nvcc at configure time)";
#else
    std::string why;
    return cuda_device_available(&why) ? std::string() : why;
#endif
}
inline std::unique_ptr<ModelEngine> make_engine(const ModelWeights& w, int slots, ModelMutant m = ModelMutant::none) {
#ifdef ATTNCHECK_HAVE_CUDA
    return make_cuda_model(w, slots, m);
#else
    (void)w, (void)slots, (void)m;
    throw ModelError("CUDA backend not built");
#endif
}
#else
inline constexpr Backend kBackend = Backend::cpu;
inline std::string skip_reason() { return {}; }
inline std::unique_ptr<ModelEngine> make_engine(const ModelWeights& w, int slots, ModelMutant m = ModelMutant::none) {
    return make_cpu_model(w, slots, m);
}
#endif

#define ATTNCHECK_SKIP_WITHOUT_DEVICE()                                  \
    do {                                                                 \
        const std::string why_ = ::attncheck::model_test::skip_reason(); \
        if (!why_.empty()) GTEST_SKIP() << why_;                         \
    } while (0)

inline std::vector<int> random_tokens(Rng& r, int n, int vocab) {
    std::vector<int> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int>(r.below(static_cast<std::uint64_t>(vocab)));
    return t;
}

// An engine plus the token history of each slot, so every call can be
// checked against the oracle recomputing the slot from scratch.
struct Session {
    ModelWeights w;
    std::unique_ptr<ModelEngine> engine;
    ModelPrecision prec;
    std::vector<std::vector<int>> history;
    CacheLedger ledger; // bounds the cached positions were appended under

    Session(ModelWeights weights, int slots, ModelMutant m = ModelMutant::none)
        : w(std::move(weights)),
          engine(make_engine(w, slots, m)),
          prec(model_precision(w.config, kBackend)),
          history(static_cast<size_t>(slots)) {}

    void reset(int slot) {
        engine->reset(slot);
        history[static_cast<size_t>(slot)].clear();
        ledger.reset(slot);
    }
    StepOutput run(const std::vector<SeqChunk>& batch, ForwardOptions o = {}) {
        o.trace = true;
        StepOutput out = engine->forward(batch, o);
        for (const auto& ch : batch) {
            auto& h = history[static_cast<size_t>(ch.seq)];
            h.insert(h.end(), ch.tokens.begin(), ch.tokens.end());
        }
        return out;
    }
    // Checks a traced call against the oracle and records its K/V bounds in
    // the ledger (call once per run, in order).
    DivergenceReport check(const StepOutput& out) {
        std::map<int, OracleTrace> oracles;
        std::map<int, const OracleTrace*> ptrs;
        for (const auto& [slot, pos] : out.rows)
            if (!oracles.count(slot))
                oracles.emplace(slot, model_oracle_forward(w, history[static_cast<size_t>(slot)]));
        for (const auto& [slot, o] : oracles) ptrs[slot] = &o;
        DivergenceReport r = check_forward(w, *out.trace, ptrs, prec, &ledger);
        ledger.record(w.config, *out.trace, r);
        return r;
    }
};

inline std::string describe(const DivergenceReport& r) { return r.summary() + "\n" + (r.ok ? "" : r.table()); }

} // namespace attncheck::model_test
