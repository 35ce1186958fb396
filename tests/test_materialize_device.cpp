// GPU materialization (engine/case/materialize_device.cu) equals the host's
// materialize() bit for bit: on thousands of sampled cases covering every
// dtype, distribution and recipe feature, on hand-made edge cases, from
// several host threads at once, and through the lower-level entry point that
// leaves the data on the device. Skips, with the reason, when no CUDA device
// is visible or the backend was not built.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/case_sampler.hpp"
#include "engine/case/dtype.hpp"
#include "engine/case/materialize_device.hpp"
#include "engine/case/problem.hpp"
#include "engine/case/rng.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include <cuda_runtime.h>
#endif
// GPU-only tests: the backend under test is CUDA whatever the binary's
// definitions, so ATTNCHECK_REQUIRE_BACKEND() skips without a device.
#ifndef ATTNCHECK_TEST_CUDA
#define ATTNCHECK_TEST_CUDA 1
#endif
#include "tests/backend_under_test.hpp"

using namespace attncheck;

namespace {

// Without the backend the tests skip before any call, but the file must
// still link.
AttentionProblem on_device(const Case& c) {
#ifdef ATTNCHECK_HAVE_CUDA
    return materialize_on_device(c);
#else
    (void)c;
    throw std::logic_error("no CUDA backend: the tests skip before getting here");
#endif
}

std::string describe(float f) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "0x%08x (%.9g)", float_bits(f), static_cast<double>(f));
    return buf;
}

// Where flat element i of a tensor sits, for the failure message.
std::string position(long long i, int heads, int d, const std::vector<long long>& start, const std::vector<int>& lens) {
    const long long row = i / d, tok = row / heads;
    for (size_t b = 0; b < lens.size(); ++b)
        if (tok >= start[b] && tok < start[b] + lens[b])
            return "seq " + std::to_string(b) + ", token " + std::to_string(tok - start[b]) + ", head " +
                   std::to_string(row % heads) + ", dim " + std::to_string(i % d);
    return "outside every sequence";
}

// Empty when host and device agree bit for bit; else the first difference.
std::string first_difference(const AttentionProblem& h, const AttentionProblem& g) {
    if (h.n_q_heads != g.n_q_heads || h.n_kv_heads != g.n_kv_heads || h.head_dim != g.head_dim ||
        h.q_lens != g.q_lens || h.kv_lens != g.kv_lens || h.q_start != g.q_start || h.kv_start != g.kv_start ||
        h.causal != g.causal || h.window != g.window || h.num_splits != g.num_splits ||
        std::memcmp(&h.scale, &g.scale, sizeof h.scale) != 0 || h.dtype != g.dtype)
        return "the problems' shape or feature fields differ";
    struct Tensor {
        const char* name;
        const std::vector<float>& host;
        const std::vector<float>& dev;
        int heads;
        const std::vector<long long>& start;
        const std::vector<int>& lens;
    };
    for (const Tensor& t : {Tensor{"Q", h.q, g.q, h.n_q_heads, h.q_start, h.q_lens},
                            Tensor{"K", h.k, g.k, h.n_kv_heads, h.kv_start, h.kv_lens},
                            Tensor{"V", h.v, g.v, h.n_kv_heads, h.kv_start, h.kv_lens}}) {
        if (t.host.size() != t.dev.size())
            return std::string(t.name) + ": host has " + std::to_string(t.host.size()) + " elements, device " +
                   std::to_string(t.dev.size());
        if (t.host.empty() || std::memcmp(t.host.data(), t.dev.data(), t.host.size() * sizeof(float)) == 0) continue;
        for (size_t i = 0; i < t.host.size(); ++i)
            if (float_bits(t.host[i]) != float_bits(t.dev[i]))
                return std::string(t.name) + "[" + std::to_string(i) + "] (" +
                       position(static_cast<long long>(i), t.heads, h.head_dim, t.start, t.lens) + "): host " +
                       describe(t.host[i]) + ", device " + describe(t.dev[i]);
    }
    return "";
}

::testing::AssertionResult same_on_device(const Case& c) {
    std::string diff;
    try {
        diff = first_difference(materialize(c), on_device(c));
    } catch (const std::exception& e) {
        diff = std::string("exception: ") + e.what();
    }
    if (diff.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "first difference: " << diff << "\ncase: " << case_to_json(c);
}

// Deterministic variations on a sampled case, for what the sampler draws
// rarely or never: a forced dtype, constant Q, sinks with biases, specials
// on K and V (one finite, rounded; a negative NaN; two on one element, the
// later winning).
void vary(Case& c, std::uint64_t seed) {
    DataRecipe& d = c.data;
    if (seed % 4 == 1) c.dtype = static_cast<DType>(seed / 4 % 3);
    if (seed % 6 == 2) d.constant_q = true;
    if (seed % 10 == 3) d.constant_k = true;
    if (seed % 10 == 7) d.constant_v = true;
    if (seed % 9 == 5) {
        d.sink_tokens = 1 + static_cast<int>(seed % 3);
        d.sink_factor = 20.0;
        d.q_bias = 0.5 * d.q_scale;
        d.k_bias = 2.0 * d.k_scale;
    }
    if (seed % 5 == 4) {
        for (int b = 0; b < c.batch(); ++b) {
            if (c.kv_lens[b] == 0) continue;
            const int tok = c.kv_lens[b] - 1, head = c.n_kv_heads - 1, dim = c.head_dim / 2;
            d.specials.push_back({TensorId::k, b, tok, head, dim, 0.1});
            d.specials.push_back({TensorId::v, b, 0, 0, 0, -std::numeric_limits<double>::quiet_NaN()});
            d.specials.push_back({TensorId::v, b, tok, head, dim, 1.5});
            d.specials.push_back({TensorId::v, b, tok, head, dim, -std::numeric_limits<double>::infinity()});
            break;
        }
    }
    fit_recipe_to_dtype(c);
    validate(c);
}

// What the sampled cases exercised; every entry must be non-zero.
struct Coverage {
    std::map<std::string, int> n;
    void add(const Case& c) {
        const DataRecipe& d = c.data;
        ++n[std::string("dtype ") + dtype_name(c.dtype)];
        ++n[std::string("dist ") + dist_name(d.dist)];
        n["constant_q"] += d.constant_q;
        n["constant_k"] += d.constant_k;
        n["constant_v"] += d.constant_v;
        n["sinks"] += d.sink_tokens > 0;
        n["q_bias"] += d.q_bias != 0.0;
        n["k_bias"] += d.k_bias != 0.0;
        n["outliers"] += !d.outlier_channels.empty();
        n["specials"] += !d.specials.empty();
        n["gqa"] += c.n_q_heads > c.n_kv_heads;
        n["batch > 1"] += c.batch() > 1;
        bool empty_q = false, empty_kv = false;
        for (int b = 0; b < c.batch(); ++b) {
            empty_q = empty_q || c.q_lens[b] == 0;
            empty_kv = empty_kv || c.kv_lens[b] == 0;
        }
        n["empty q sequence"] += empty_q;
        n["empty kv sequence"] += empty_kv;
    }
};

std::vector<std::string> check_seeds(std::uint64_t first, std::uint64_t count, Coverage* cov) {
    std::vector<std::string> failures;
    for (std::uint64_t seed = first; seed < first + count && failures.size() < 5; ++seed) {
        Case c = sample_wide_case(seed);
        vary(c, seed);
        if (cov) cov->add(c);
        if (auto r = same_on_device(c); !r) failures.push_back("seed " + std::to_string(seed) + ": " + r.message());
    }
    return failures;
}

// (scale, bias) such that float(scale * u + bias * r) depends on whether the
// sum is rounded twice (the host: product, then sum) or fused into one FMA
// (what nvcc makes of a*b + c unless the device code forbids it). By chance
// such elements are very rare (the double results differ in the last bit,
// which the float conversion almost always hides), so one is built: bias * r
// nearly cancels scale * u, leaving an exact float midpoint M, while the
// product's rounding error is larger than half an ulp of M, so the fused sum
// misses M and rounds to the other float.
std::optional<std::pair<double, double>> fma_sensitive(double u, double r) {
    for (int k = 0; k < 64; ++k) {
        const double bias = (u > 0 ? -1.0 : 1.0) * (9.0 + k * 0.37) / std::fabs(r);
        const double c = bias * r;
        for (int m = 0; m < 64; ++m) {
            const double M = 1.0 + (2 * m + 1) * 0x1p-24; // halfway between two floats
            const double T = M - c;                       // the product to hit
            if (T + c != M) continue;
            double scale = T / u;
            for (int i = 0; i < 4; ++i) scale = std::nextafter(scale, 0.0);
            for (int i = 0; i < 9; ++i, scale = std::nextafter(scale, INFINITY)) {
                volatile double product = scale * u; // volatile: no contraction here either
                if (!(scale > 0) || product != T) continue;
                const float twice = static_cast<float>(product + c), fused = static_cast<float>(std::fma(scale, u, c));
                if (float_bits(twice) != float_bits(fused)) return std::make_pair(scale, bias);
            }
        }
    }
    return std::nullopt;
}

Case small_case(DType t, Dist dist, std::uint64_t seed) {
    Case c;
    c.n_q_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 5;
    c.q_lens = {0, 3, 0, 1, 4};
    c.kv_lens = {0, 5, 2, 0, 1};
    c.dtype = t;
    c.data.dist = dist;
    c.data.seed = seed;
    return c;
}

} // namespace

TEST(MaterializeDevice, SampledCasesAreBitIdentical) {
    ATTNCHECK_REQUIRE_BACKEND();
    Coverage cov;
    const std::vector<std::string> failures = check_seeds(0, 2400, &cov);
    for (const std::string& f : failures) ADD_FAILURE() << f;
    for (const auto& [what, count] : cov.n) {
        std::printf("  %-20s %d cases\n", what.c_str(), count);
        EXPECT_GT(count, 0) << what << " never occurred: widen vary()";
    }
    for (const char* name :
         {"dtype fp32", "dtype fp16", "dtype bf16", "dist normal", "dist uniform", "dist sparse_int"})
        EXPECT_GT(cov.n[name], 0) << name << " never occurred";
}

TEST(MaterializeDevice, EdgeCasesAreBitIdentical) {
    ATTNCHECK_REQUIRE_BACKEND();
    std::vector<std::pair<std::string, Case>> cases;
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (Dist dist : {Dist::normal, Dist::uniform, Dist::sparse_int}) {
            const std::string name = std::string(dtype_name(t)) + " " + dist_name(dist);
            cases.emplace_back(name + " plain, zero-length sequences", small_case(t, dist, 1));
            // Every recipe feature at once; 3 sink tokens, more than some kv_lens.
            Case f = small_case(t, dist, 0xffffffffffffffffull);
            f.data.q_scale = 1.5;
            f.data.k_scale = 0.7;
            f.data.v_scale = 3.0;
            f.data.outlier_channels = {0, 4};
            f.data.outlier_factor = 8.0;
            f.data.sink_tokens = 3;
            f.data.sink_factor = 50.0;
            f.data.q_bias = -0.5;
            f.data.k_bias = 2.0;
            f.data.specials = {
                {TensorId::q, 1, 2, 3, 4, inf}, {TensorId::k, 1, 0, 1, 0, -nan}, {TensorId::v, 4, 0, 0, 4, 0.3}};
            cases.emplace_back(name + " every feature", f);
            for (int which = 0; which < 3; ++which) {
                Case k = f;
                k.data.constant_q = which == 0;
                k.data.constant_k = which == 1;
                k.data.constant_v = which == 2;
                cases.emplace_back(name + " every feature, constant " + "qkv"[which], k);
            }
            // Magnitudes at both ends of the dtype: subnormals, and the largest finite values.
            Case tiny = small_case(t, dist, 7);
            tiny.data.q_scale = tiny.data.k_scale = tiny.data.v_scale = t == DType::f16 ? 1e-7 : 1e-40;
            cases.emplace_back(name + " subnormal magnitudes", tiny);
            Case huge = small_case(t, dist, 8);
            const double bound = dist == Dist::normal ? 6.0 : dist == Dist::uniform ? 1.0 : 3.0;
            huge.data.q_scale = huge.data.k_scale = huge.data.v_scale = max_finite(t) / bound * (1.0 - 0x1p-40);
            cases.emplace_back(name + " largest magnitudes", huge);
        }
    Case all_empty;
    all_empty.q_lens = {0};
    all_empty.kv_lens = {0};
    all_empty.data.specials.clear();
    cases.emplace_back("one empty sequence", all_empty);
    Case many; // more sequences than one block of threads
    many.n_q_heads = 3;
    many.n_kv_heads = 1;
    many.head_dim = 3;
    many.q_lens.clear();
    many.kv_lens.clear();
    for (int b = 0; b < 150; ++b) {
        many.q_lens.push_back(b % 5);
        many.kv_lens.push_back(b % 7);
    }
    many.data.dist = Dist::sparse_int;
    many.data.sink_tokens = 2;
    many.data.constant_v = true;
    many.data.specials = {{TensorId::q, 149, 3, 2, 2, -inf}, {TensorId::v, 148, 0, 0, 1, 7.0}};
    cases.emplace_back("150 sequences", many);
    Case wide; // the largest head_dim, one token, GQA 8:1
    wide.n_q_heads = 8;
    wide.n_kv_heads = 1;
    wide.head_dim = 1024;
    wide.data.outlier_channels = {1023};
    wide.data.outlier_factor = 100.0;
    wide.data.seed = 99;
    cases.emplace_back("head_dim 1024", wide);
    Case one;
    one.head_dim = 1;
    one.q_lens = {1, 2};
    one.kv_lens = {3, 1};
    one.data.constant_q = one.data.constant_k = true;
    cases.emplace_back("head_dim 1", one);
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        // Explicit values: exact ties of each dtype's rounding, subnormals,
        // signed zeros, NaN of either sign, infinities; then specials over them.
        Case e;
        e.n_q_heads = 2;
        e.n_kv_heads = 1;
        e.head_dim = 4;
        e.q_lens = {2, 0};
        e.kv_lens = {1, 2};
        e.dtype = t;
        ExplicitValues ev;
        ev.q = {1.0 + 0x1p-11, 1.0 + 0x1p-8, 1.0 + 3 * 0x1p-11,
                1.0 + 0x1p-24, -0.0,         0x1p-25,
                0x1p-24,       0x1p-130,     0.1,
                -0.1,          nan,          -nan,
                inf,           -inf,         65504.0,
                -1e-45};
        ev.k = {0.3, 1.0 / 3, -2.5, 6e-8, 1e-38, -0.0, 0.0, 1e-300, 7.0, -7.0, 0.5, 0.25};
        ev.v = {nan, 2.0, 3.0, 4.0, -65504.0, 1.5, 1e-5, -1e-5, 0x1p-14, 0x1p-15, 0x1p-126, 0x1p-127};
        e.values = ev;
        e.data.specials = {
            {TensorId::q, 0, 1, 1, 3, nan}, {TensorId::k, 1, 1, 0, 2, 0.1}, {TensorId::k, 1, 1, 0, 2, -0.2}};
        cases.emplace_back(std::string("explicit values ") + dtype_name(t), e);
    }
    for (const auto& [name, c] : cases) EXPECT_TRUE(same_on_device(c)) << name;
}

// Element 0 of Q and of K built so that FMA contraction of the recipe's
// scale * draw + bias * r would change its float: the device code must
// round the product and the sum separately, as the host does. The draws
// and bias vectors come from the streams problem.cpp forks for sequence 0
// (tags 1, 2 and 5, 6); the host check below fails if those change.
TEST(MaterializeDevice, NoFmaContraction) {
    ATTNCHECK_REQUIRE_BACKEND();
    Case c;
    c.head_dim = 2;
    c.q_lens = {1};
    c.kv_lens = {1};
    c.data.dist = Dist::normal;
    int built = 0;
    for (std::uint64_t seed = 1; seed < 50 && built < 4; ++seed) {
        const Rng root(seed);
        const double uq = root.fork(1).normal(), uk = root.fork(2).normal();
        const double rq = root.fork(5).normal(), rk = root.fork(6).normal();
        const auto q = fma_sensitive(uq, rq), k = fma_sensitive(uk, rk);
        if (!q || !k) continue;
        c.data.seed = seed;
        std::tie(c.data.q_scale, c.data.q_bias) = *q;
        std::tie(c.data.k_scale, c.data.k_bias) = *k;
        const AttentionProblem h = materialize(c);
        volatile double pq = c.data.q_scale * uq, bq = c.data.q_bias * rq;
        volatile double pk = c.data.k_scale * uk, bk = c.data.k_bias * rk;
        ASSERT_EQ(float_bits(h.q[0]), float_bits(static_cast<float>(pq + bq)))
            << "materialize() no longer computes Q as this test assumes; rebuild the construction";
        ASSERT_EQ(float_bits(h.k[0]), float_bits(static_cast<float>(pk + bk)))
            << "materialize() no longer computes K as this test assumes; rebuild the construction";
        ASSERT_NE(float_bits(h.q[0]), float_bits(static_cast<float>(std::fma(c.data.q_scale, uq, bq))));
        ASSERT_NE(float_bits(h.k[0]), float_bits(static_cast<float>(std::fma(c.data.k_scale, uk, bk))));
        EXPECT_TRUE(same_on_device(c)) << "seed " << seed;
        ++built;
    }
    std::printf("  %d FMA-sensitive cases\n", built);
    EXPECT_GT(built, 0) << "no FMA-sensitive case could be built";
}

// Each host thread has its own default stream; concurrent calls must neither
// mix their data nor race on the tables they upload.
TEST(MaterializeDevice, ConcurrentHostThreads) {
    ATTNCHECK_REQUIRE_BACKEND();
    constexpr int kThreads = 4;
    std::vector<std::vector<std::string>> failures(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([t, &failures] {
            try {
                failures[t] = check_seeds(100000 + 1000 * static_cast<std::uint64_t>(t), 60, nullptr);
            } catch (const std::exception& e) {
                failures[t].push_back(std::string("exception: ") + e.what());
            }
        });
    for (std::thread& th : threads) th.join();
    for (const auto& fs : failures)
        for (const std::string& f : fs) ADD_FAILURE() << f;
}

// materialize_into_device leaves the data on the device and returns before
// it is written; once the thread's stream is synchronized the arrays hold
// materialize()'s values.
TEST(MaterializeDevice, IntoCallerArrays) {
    ATTNCHECK_REQUIRE_BACKEND();
#ifdef ATTNCHECK_HAVE_CUDA
    for (std::uint64_t seed : {3u, 17u, 40u}) {
        Case c = sample_wide_case(seed);
        vary(c, seed);
        const AttentionProblem h = materialize(c);
        AttentionProblem g = h;
        float* d[3] = {nullptr, nullptr, nullptr};
        std::vector<float>* out[3] = {&g.q, &g.k, &g.v};
        for (int i = 0; i < 3; ++i) {
            std::fill(out[i]->begin(), out[i]->end(), 0.0f);
            if (!out[i]->empty()) {
                ASSERT_EQ(cudaMalloc(&d[i], out[i]->size() * sizeof(float)), cudaSuccess);
            }
        }
        materialize_into_device(c, d[0], d[1], d[2]);
        for (int i = 0; i < 3; ++i) {
            if (out[i]->empty()) continue;
            EXPECT_EQ(cudaMemcpyAsync(out[i]->data(), d[i], out[i]->size() * sizeof(float), cudaMemcpyDeviceToHost,
                                      cudaStreamPerThread),
                      cudaSuccess);
        }
        EXPECT_EQ(cudaStreamSynchronize(cudaStreamPerThread), cudaSuccess);
        for (float* p : d) {
            if (!p) continue;
            EXPECT_EQ(cudaFree(p), cudaSuccess);
        }
        const std::string diff = first_difference(h, g);
        EXPECT_TRUE(diff.empty()) << "seed " << seed << ": " << diff;
    }
#endif
}
