// Which backend a test binary exercises. The same test sources build a CPU
// binary (label cpu) and, with ATTNCHECK_TEST_CUDA=1, a CUDA binary (label
// gpu) whose tests skip with the reason when no device is visible -- they
// report as skipped, never as passed.
#pragma once

#include <string>

#include "engine/targets/target.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#endif

namespace attncheck {

#if ATTNCHECK_TEST_CUDA
inline constexpr Backend kBackend = Backend::cuda;
#else
inline constexpr Backend kBackend = Backend::cpu;
#endif

inline Backend test_backend() { return kBackend; }

// Empty when the backend can run here; otherwise why not.
inline std::string backend_unavailable() {
    if (kBackend == Backend::cpu) return "";
#ifdef ATTNCHECK_HAVE_CUDA
    std::string why;
    return cuda_device_available(&why) ? "" : why;
#else
    return "CUDA backend not built (no nvcc at configure time)";
#endif
}

} // namespace attncheck

#define ATTNCHECK_REQUIRE_BACKEND()                                                              \
    do {                                                                                         \
        if (auto why_ = ::attncheck::backend_unavailable(); !why_.empty()) GTEST_SKIP() << why_; \
    } while (0)
