// `attncheck bench kernels`: every kernel family timed at the anchor shapes
// of ../shared/anchors.md, through the ordinary target path under a
// KernelClock (engine/cuda/kernel_clock.hpp): inputs filled on the device,
// warm-up runs, then the median of CUDA-event timings of each run's launches,
// beside the anchor's figure as a ratio (anchor_us / us: above 1 is faster
// than the anchor). The anchor figures are anchors.md's cuDNN and FA2
// columns, or, with --anchors, PyTorch's SDPA backends timed the same way in
// the same device call by bench/sdpa_kernels.py (which reads this command's
// --print-shapes, so the shapes are written once, here).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "engine/timing/median.hpp"
#include "kernels/registry.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/kernel_clock.hpp"
#include "kernels/decode_split/decode_split.hpp"
#endif

namespace attncheck {

namespace {

// The anchor shapes. cudnn and fa2 are anchors.md's H200 figures (2026-11-30):
// microseconds for decode rows, TFLOP/s for prefill rows.
struct Shape {
    bool prefill;
    DType dtype;
    int batch, hq, hkv, d, len;
    bool causal;
    double cudnn, fa2;
};
const Shape kShapes[] = {
    {false, DType::f16, 1, 32, 8, 128, 4096, false, 44.1, 36.8},
    {false, DType::f16, 1, 32, 8, 128, 32768, false, 54.1, 66.4},
    {false, DType::f16, 16, 32, 8, 128, 8192, false, 136.0, 147.6},
    {false, DType::f16, 64, 32, 8, 128, 4096, false, 253.9, 417.1},
    {false, DType::bf16, 1, 14, 2, 64, 4096, false, 31.9, 31.9},
    {false, DType::bf16, 1, 14, 2, 64, 32768, false, 31.2, 54.8},
    {false, DType::bf16, 64, 14, 2, 64, 4096, false, 52.5, 60.4},
    {true, DType::bf16, 4, 32, 32, 128, 4096, true, 581, 312},
    {true, DType::bf16, 4, 32, 32, 64, 4096, true, 421, 277},
    {true, DType::bf16, 1, 16, 16, 128, 2048, true, 251, 144},
};
// Families timed per kind of shape; the first is the one the goals
// are stated for (split-KV for decode, tensor-core flash for prefill).
const std::vector<std::string> kDecodeFamilies{"decode_split", "decode_gqa", "decode", "standard_path"};
const std::vector<std::string> kPrefillFamilies{"flash_prefill", "standard_path"};

std::string shape_key(const Shape& s) {
    return fmt::format("B{} H{}/{} L{} d{}{}", s.batch, s.hq, s.hkv, s.len, s.d, s.causal ? " causal" : "");
}

// Only the timed run (CUDA builds) uses these; a CPU-only -Werror build
// would reject them as unused.
#ifdef ATTNCHECK_HAVE_CUDA
double flops(const Shape& s) { // 4·B·H·L²·d, halved for causal (anchors.md)
    const double f = 4.0 * s.batch * s.hq * static_cast<double>(s.len) * s.len * s.d;
    return s.causal ? f / 2 : f;
}

double bytes(const Shape& s) { // K and V read once, plus Q and O (anchors.md)
    const double q_rows = s.prefill ? static_cast<double>(s.batch) * s.len : s.batch;
    return 2.0 * (2.0 * s.batch * s.len * s.hkv * s.d + 2.0 * q_rows * s.hq * s.d);
}

// µs of the anchor's figure (a TFLOP/s figure becomes the time it implies).
double anchor_us(const Shape& s, double figure) { return s.prefill ? flops(s) / (figure * 1e6) : figure; }

Case case_of(const Shape& s) {
    Case c;
    c.n_q_heads = s.hq;
    c.n_kv_heads = s.hkv;
    c.head_dim = s.d;
    c.q_lens.assign(static_cast<size_t>(s.batch), s.prefill ? s.len : 1);
    c.kv_lens.assign(static_cast<size_t>(s.batch), s.len);
    c.causal = s.causal;
    c.dtype = s.dtype;
    return c;
}
#endif

struct Args {
    std::string family;  // empty: all
    std::string anchors; // bench/sdpa_kernels.py output
    int reps = 20, warmup = 3;
    int page_size = 0; // decode rows with a paged KV cache of pages this long (0: contiguous)
    bool json = false, print_shapes = false;
};

#ifdef ATTNCHECK_HAVE_CUDA
// Same-run anchor figures: {(shape key, dtype, backend) -> µs}.
using AnchorTable = std::map<std::tuple<std::string, std::string, std::string>, double>;

AnchorTable read_anchors(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("bench kernels: cannot read " + path);
    AnchorTable t;
    try {
        const nlohmann::json j = nlohmann::json::parse(in);
        for (const auto& r : j.at("timings")) {
            if (!r.contains("us")) continue; // the backend refused the shape
            t[{r.at("shape").get<std::string>(), r.at("dtype").get<std::string>(),
               r.at("backend").get<std::string>()}] = r.at("us").get<double>();
        }
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(
            fmt::format("bench kernels: {} is not an sdpa_kernels.py result: {}", path, e.what()));
    }
    return t;
}
#endif

int print_shapes() {
    nlohmann::json a = nlohmann::json::array();
    for (const Shape& s : kShapes)
        a.push_back({{"shape", shape_key(s)},
                     {"prefill", s.prefill},
                     {"dtype", dtype_name(s.dtype)},
                     {"batch", s.batch},
                     {"hq", s.hq},
                     {"hkv", s.hkv},
                     {"d", s.d},
                     {"len", s.len},
                     {"causal", s.causal}});
    fmt::print("{}\n", a.dump(2));
    return 0;
}

#ifdef ATTNCHECK_HAVE_CUDA
struct Timing {
    double us = 0;
    int splits = 1;
    std::string skipped; // why the family does not run the shape
};

Timing time_family(const std::string& family, const Shape& s, const Args& a) {
    Timing t;
    Case c = case_of(s);
    if (!s.prefill) c.page_size = a.page_size;
    if (family == "decode_split") c.num_splits = t.splits = kernels::decode_split_cuda_splits(problem_shape(c));
    const std::unique_ptr<Target> target = make_target(family, Backend::cuda);
    if (std::string why = target->unsupported(c); !why.empty()) {
        t.skipped = why;
        return t;
    }
    KernelClock clock(ClockPlan{a.warmup, a.reps, 1});
    const Observation obs = target->run(problem_shape(c), std::nullopt);
    for (float x : obs.o)
        if (!std::isfinite(x))
            throw std::runtime_error(
                fmt::format("bench kernels: {} at {} wrote a non-finite output", family, shape_key(s)));
    t.us = median_of(clock.rep_us());
    return t;
}

int run(const Args& a) {
    std::string why;
    if (!cuda_usable(&why)) {
        fmt::print(stderr, "bench kernels: needs a CUDA device ({})\n", why);
        return 2;
    }
    std::optional<AnchorTable> same_run;
    if (!a.anchors.empty()) same_run = read_anchors(a.anchors);
    const std::string source = same_run ? "same run" : "anchors.md";
    auto anchor_of = [&](const Shape& s, const char* backend, double md_figure) {
        if (!same_run) return anchor_us(s, md_figure);
        const auto it = same_run->find({shape_key(s), dtype_name(s.dtype), backend});
        return it == same_run->end() ? NAN : it->second;
    };
    nlohmann::json out = nlohmann::json::array();
    if (!a.json)
        fmt::print(
            "attncheck bench kernels: {}, commit {}; anchors: {}{}\n{:<14} {:<30} {:<5} {:>6} {:>10} {:>11} "
            "{:>10} {:>7} {:>10} {:>7}\n",
            device_line(), build_commit(), source,
            a.page_size ? fmt::format("; decode caches paged, pages of {} keys (anchors contiguous)", a.page_size) : "",
            "family", "shape", "dtype", "splits", "us", "rate", "cuDNN us", "ratio", "FA2 us", "ratio");
    for (const Shape& s : kShapes) {
        for (const std::string& f : s.prefill ? kPrefillFamilies : kDecodeFamilies) {
            if (!a.family.empty() && f != a.family) continue;
            const Timing t = time_family(f, s, a);
            const double cudnn = anchor_of(s, "cudnn", s.cudnn), fa2 = anchor_of(s, "flash", s.fa2);
            const double rate = t.us > 0 ? (s.prefill ? flops(s) / t.us / 1e6 : bytes(s) / t.us / 1e6) : 0;
            const char* unit = s.prefill ? "TFLOP/s" : "TB/s";
            if (a.json) {
                nlohmann::json r{{"family", f},
                                 {"shape", shape_key(s)},
                                 {"dtype", dtype_name(s.dtype)},
                                 {"splits", t.splits},
                                 {"page_size", s.prefill ? 0 : a.page_size},
                                 {"us", t.us},
                                 {"anchor", "cudnn (" + source + ")"},
                                 {"anchor_us", cudnn},
                                 {"ratio", t.us > 0 ? cudnn / t.us : 0.0},
                                 {"fa2_us", fa2},
                                 {"ratio_fa2", t.us > 0 ? fa2 / t.us : 0.0},
                                 {s.prefill ? "tflops" : "tbps", rate},
                                 {"device", device_line()},
                                 {"commit", build_commit()}};
                if (!t.skipped.empty()) r["skipped"] = t.skipped;
                out.push_back(r);
            } else if (!t.skipped.empty()) {
                fmt::print("{:<14} {:<30} {:<5} skipped: {}\n", f, shape_key(s), dtype_name(s.dtype), t.skipped);
            } else {
                fmt::print("{:<14} {:<30} {:<5} {:>6} {:>10.1f} {:>6.2f} {:<4} {:>10.1f} {:>7.2f} {:>10.1f} {:>7.2f}\n",
                           f, shape_key(s), dtype_name(s.dtype), t.splits, t.us, rate, unit, cudnn, cudnn / t.us, fa2,
                           fa2 / t.us);
            }
        }
    }
    if (a.json) fmt::print("{}\n", out.dump(2));
    return 0;
}
#else
int run(const Args&) {
    fmt::print(stderr, "bench kernels: needs the CUDA backend (this build has the CPU half only)\n");
    return 2;
}
#endif

} // namespace

void register_bench_kernels(CLI::App& bench, int& rc) {
    auto a = std::make_shared<Args>();
    auto* k =
        bench.add_subcommand("kernels", "each kernel family timed at the anchor shapes, as ratios to cuDNN and FA2");
    k->add_option("--family", a->family, "time one family only");
    k->add_option("--anchors", a->anchors, "same-run anchor timings from bench/sdpa_kernels.py (default: anchors.md)");
    k->add_option("--page-size", a->page_size,
                  "decode rows read a paged KV cache of pages this long (families that page; the anchors stay "
                  "contiguous)")
        ->check(CLI::Range(0, CaseLimits::max_page_size));
    k->add_option("--reps", a->reps, "timed runs per family and shape (the median is reported)")
        ->check(CLI::PositiveNumber);
    k->add_option("--warmup", a->warmup, "untimed runs before them")->check(CLI::NonNegativeNumber);
    k->add_flag("--json", a->json, "an array of objects on stdout");
    k->add_flag("--print-shapes", a->print_shapes,
                "print the anchor shapes as JSON (bench/sdpa_kernels.py reads them)");
    k->callback([a, &rc] {
        if (!a->family.empty()) {
            const auto names = family_names();
            if (std::find(names.begin(), names.end(), a->family) == names.end()) {
                fmt::print(stderr, "bench kernels: unknown family '{}'\n", a->family);
                rc = 2;
                return;
            }
        }
        try {
            rc = a->print_shapes ? print_shapes() : run(*a);
        } catch (const std::invalid_argument& e) {
            fmt::print(stderr, "{}\n", e.what());
            rc = 2;
        }
    });
}

} // namespace attncheck
