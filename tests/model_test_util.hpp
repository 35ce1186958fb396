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
#include "model/model_session.hpp"
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

// The engine under test in a checked session (model/model_session.hpp).
struct Session : CheckedSession {
    Session(ModelWeights weights, int slots, ModelMutant m = ModelMutant::none)
        : CheckedSession(weights, make_engine(weights, slots, m), kBackend) {}
};

inline std::string describe(const DivergenceReport& r) { return r.summary() + "\n" + (r.ok ? "" : r.table()); }

} // namespace attncheck::model_test
