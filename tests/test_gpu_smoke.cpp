// GPU smoke test: device-side fp16/bf16 rounding equals the host's, on every
// fp16/bf16 midpoint neighbourhood and on random floats; guard bands of
// interleaved jobs, checked together by their release, blame the right job. Skips, with the
// reason, when no CUDA device is visible or the backend was not built.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/case/dtype.hpp"
#include "engine/case/rng.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "engine/fiber/interleave.hpp"
#endif

using namespace attncheck;

TEST(GpuSmoke, DeviceRoundingEqualsHostRounding) {
#ifndef ATTNCHECK_HAVE_CUDA
    GTEST_SKIP() << "CUDA backend not built (no nvcc at configure time)";
#else
    std::string why;
    if (!cuda_device_available(&why)) GTEST_SKIP() << why;
    std::printf("device: %s\n", cuda_device_name().c_str());
    std::vector<float> xs;
    for (std::uint32_t b = 0; b < 0x10000; ++b) { // every fp16 value and its neighbours
        const float f = f16_bits_to_float(static_cast<std::uint16_t>(b));
        xs.insert(xs.end(), {f, std::nextafter(f, INFINITY), std::nextafter(f, -INFINITY)});
        const float g = bf16_bits_to_float(static_cast<std::uint16_t>(b));
        xs.insert(xs.end(), {g, std::nextafter(g, INFINITY), std::nextafter(g, -INFINITY)});
    }
    Rng r(1);
    for (int i = 0; i < 1000000; ++i) xs.push_back(bits_float(static_cast<std::uint32_t>(r.next())));
    const auto h = device_round_f16(xs), b = device_round_bf16(xs);
    long long bad_h = 0, bad_b = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        if (std::isnan(xs[i])) continue; // NaN payloads may differ; NaN-ness checked below
        bad_h += h[i] != float_to_f16_bits(xs[i]);
        bad_b += b[i] != float_to_bf16_bits(xs[i]);
    }
    EXPECT_EQ(bad_h, 0);
    EXPECT_EQ(bad_b, 0);
    EXPECT_TRUE(std::isnan(f16_bits_to_float(device_round_f16({NAN})[0])));
    EXPECT_TRUE(std::isnan(bf16_bits_to_float(device_round_bf16({NAN})[0])));
#endif
}

// Interleaved jobs (engine/fiber/interleave.hpp) leave their guard checks
// to the release that ends their wait: one release checks all three
// buffers, and only the job whose buffer was overrun sees the error.
TEST(GpuSmoke, InterleavedGuardChecksBlameTheRightJob) {
#ifndef ATTNCHECK_HAVE_CUDA
    GTEST_SKIP() << "CUDA backend not built (no nvcc at configure time)";
#else
    std::string why;
    if (!cuda_device_available(&why)) GTEST_SKIP() << why;
    DeviceBuffer<float> a(100, "buffer a"), b(100, "buffer b"), c(100, "buffer c");
    ASSERT_EQ(cudaMemsetAsync(b.get() + 100, 0, 4, cudaStreamPerThread), cudaSuccess); // 4 bytes past b's end
    std::vector<DeviceBuffer<float>*> bufs = {&a, &b, &c};
    std::vector<std::string> verdict(bufs.size());
    std::vector<std::function<void()>> jobs;
    for (size_t k = 0; k < bufs.size(); ++k)
        jobs.emplace_back([&, k] {
            try {
                check_guard_bands({bufs[k]->guards()});
                verdict[k] = "ok";
            } catch (const GuardBandError& e) {
                verdict[k] = e.what();
            }
        });
    int releases = 0;
    run_interleaved(jobs, [&] {
        ++releases;
        release_thread_stream();
    });
    EXPECT_EQ(releases, 1);
    EXPECT_EQ(verdict[0], "ok");
    EXPECT_EQ(verdict[1], "buffer b: device guard band overwritten at byte 0 past the end");
    EXPECT_EQ(verdict[2], "ok");
    EXPECT_THROW(check_guard_bands({b.guards()}), GuardBandError) << "one thread, no fibers: the same verdict";
    EXPECT_NO_THROW(check_guard_bands({a.guards(), c.guards()}));
#endif
}
