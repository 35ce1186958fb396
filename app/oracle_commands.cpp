// `attncheck selfcheck`, `validate` and `info`: the oracle's own checks, case
// file validation, build and device facts.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "app/commands.hpp"
#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "oracle/selfcheck.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#include "oracle/gpu/oracle_gpu_sweep.hpp"
#include "oracle/oracle_crosscheck.hpp"
#endif

namespace attncheck {

namespace {

int cmd_selfcheck(long long cases, std::uint64_t seed) {
    using clock = std::chrono::steady_clock;
    const bool tty = isatty(fileno(stderr));
    bool ok = true;
    fmt::print("attncheck selfcheck: the oracle and its error model ({} cases, seed {})\n", cases, seed);
    fmt::print("{}\n\n", device_line());

    fmt::print("Closed forms\n");
    for (const auto& r : oracle_closed_forms()) {
        fmt::print("  {:4}  {}{}\n", r.pass ? "ok" : "FAIL", r.name,
                   r.pass || r.detail.empty() ? "" : "  -- " + r.detail);
        ok = ok && r.pass;
    }

    auto t0 = clock::now();
    const long long n_agree = std::max(1LL, cases / 10);
    const AgreementSweep ag = sweep_reference_agreement(seed, n_agree);
    const bool ag_ok = ag.max_rel_mp <= 1e-12 && ag.max_rel_tiled <= 1e-12;
    ok = ok && ag_ok;
    fmt::print("\nReference agreement over {} cases, {} rows ({:.1f} s)\n", ag.cases, ag.rows,
               std::chrono::duration<double>(clock::now() - t0).count());
    fmt::print("  {:4}  fp64 vs cpp_bin_float_50: max relative difference {:.3g} (limit 1e-12)\n",
               ag.max_rel_mp <= 1e-12 ? "ok" : "FAIL", ag.max_rel_mp);
    fmt::print("  {:4}  fp64 vs independent tiled fp64: max relative difference {:.3g} (limit 1e-12)\n",
               ag.max_rel_tiled <= 1e-12 ? "ok" : "FAIL", ag.max_rel_tiled);

#ifdef ATTNCHECK_HAVE_CUDA
    if (cuda_device_available(nullptr)) {
        t0 = clock::now();
        const GpuOracleSweep g = sweep_gpu_oracle(seed, n_agree);
        const bool g_ok = g.disagreements == 0 && g.max_rel_mp <= kOracleAgreement;
        ok = ok && g_ok;
        fmt::print("\nGPU oracle over {} cases, {} rows, two profiles each ({:.1f} s; GPU {:.2f} s, host {:.2f} s)\n",
                   g.cases, g.rows, std::chrono::duration<double>(clock::now() - t0).count(), g.seconds_gpu,
                   g.seconds_host);
        fmt::print("  {:4}  GPU vs host fp64 oracle and bounds: {} disagreements (O, LSE 1e-12; bounds 1e-6){}\n",
                   g.disagreements == 0 ? "ok" : "FAIL", g.disagreements,
                   g.first_disagreement.empty() ? "" : "\n        first: " + g.first_disagreement);
        fmt::print("  {:4}  GPU vs cpp_bin_float_50 ({} cases): max relative difference {:.3g} (limit 1e-12)\n",
                   g.max_rel_mp <= kOracleAgreement ? "ok" : "FAIL", g.mp_cases, g.max_rel_mp);
    } else {
        fmt::print("\nGPU oracle: not checked ({})\n", device_line());
    }
#endif

    t0 = clock::now();
    auto progress = [&](long long i) {
        if (tty && (i % 100 == 0))
            fmt::print(stderr, "\r  error model: case {}/{} ({:.0f} s)", i, cases,
                       std::chrono::duration<double>(clock::now() - t0).count());
    };
    const ErrorModelSweep em = sweep_error_model(seed, cases, progress);
    if (tty) fmt::print(stderr, "\r{:60}\r", "");
    fmt::print("\nError model, correct computations, {} random cases ({:.1f} s)\n", em.cases,
               std::chrono::duration<double>(clock::now() - t0).count());
    fmt::print("  {:4}  {:34} {:>8} {:>11} {:>12} {:>8} {:>12} {:>12}\n", "", "computation", "cases", "rows judged",
               "out of range", "alarms", "worst e/b", "median e/b");
    for (const auto& t : em.correct) {
        fmt::print("  {:4}  {:34} {:>8} {:>11} {:>12} {:>8} {:>12.3g} {:>12.3g}\n", t.false_alarms == 0 ? "ok" : "FAIL",
                   t.profile, t.cases, t.rows_judged, t.rows_out_of_range, t.false_alarms, t.worst_ratio,
                   t.median_ratio);
        if (t.false_alarms)
            fmt::print("        first false alarm (seed {}): {}\n", t.first_alarm_seed, t.first_alarm_detail);
        ok = ok && t.false_alarms == 0;
    }
    fmt::print("  {:4}  FlashAttention-style check (err <= 2 x naive same-dtype + floor): {} of {} held\n",
               em.relative_failures == 0 ? "ok" : "FAIL", em.relative_checked - em.relative_failures,
               em.relative_checked);
    ok = ok && em.relative_failures == 0;

    const long long n_det = std::max(1LL, cases / 10);
    const DetectionSweep ds = sweep_defect_detection(seed, n_det);
    const bool det_ok = ds.scale_caught == ds.scale_judged && ds.drop_caught == ds.drop_judged &&
                        ds.relative_scale_caught * 100 >= ds.cases * 99;
    ok = ok && det_ok;
    fmt::print("\nError model, wrong computations, {} well-conditioned cases\n", ds.cases);
    fmt::print("  {:4}  scale off by 1%: caught in {} of {}\n", ds.scale_caught == ds.scale_judged ? "ok" : "FAIL",
               ds.scale_caught, ds.scale_judged);
    fmt::print("  {:4}  one key left out of the normalizer: caught in {} of {}\n",
               ds.drop_caught == ds.drop_judged ? "ok" : "FAIL", ds.drop_caught, ds.drop_judged);
    fmt::print("  {:4}  scale off by 1%, FlashAttention-style check (fp16): caught in {} of {} (needs 99%)\n",
               ds.relative_scale_caught * 100 >= ds.cases * 99 ? "ok" : "FAIL", ds.relative_scale_caught, ds.cases);
    if (!ds.first_missed_detail.empty())
        fmt::print("        first miss (seed {}): {}\n", ds.first_missed_seed, ds.first_missed_detail);

    fmt::print("\n{}\n", ok ? "selfcheck: all checks held" : "selfcheck: FAILED");
    return ok ? 0 : 1;
}

int cmd_validate(const std::vector<std::string>& files) {
    int rc = 0;
    for (const auto& f : files) {
        try {
            const Case c = load_case_file(f);
            const AttentionProblem p = materialize(c);
            fmt::print("{}: ok ({} seqs, {}/{} heads, d={}, {}, {} Q and {} K/V tokens)\n", f, c.batch(), c.n_q_heads,
                       c.n_kv_heads, c.head_dim, dtype_name(c.dtype), p.total_q(), p.total_kv());
        } catch (const CaseError& e) {
            fmt::print(stderr, "error: {}\n", e.what());
            rc = 2;
        }
    }
    return rc;
}

} // namespace

std::string device_line() {
#ifdef ATTNCHECK_HAVE_CUDA
    std::string why;
    if (cuda_device_available(&why)) return "CUDA device: " + cuda_device_name();
    return "CUDA backend built; " + why;
#else
    return "CUDA backend not built (no nvcc at configure time)";
#endif
}

int visible_cuda_devices() {
#ifdef ATTNCHECK_HAVE_CUDA
    return cuda_device_count();
#else
    return 0;
#endif
}

bool cuda_usable(std::string* why) {
#ifdef ATTNCHECK_HAVE_CUDA
    std::string w;
    const bool ok = cuda_device_available(&w);
    if (why) *why = w;
    return ok;
#else
    if (why) *why = "CUDA backend not built (no nvcc at configure time)";
    return false;
#endif
}

Backend resolve_backend(const std::string& name) {
    if (name == "cpu") return Backend::cpu;
    std::string why;
    if (name == "cuda") {
        if (!cuda_usable(&why)) throw std::invalid_argument("--backend cuda: " + why);
        return Backend::cuda;
    }
    if (name.empty()) return cuda_usable() ? Backend::cuda : Backend::cpu;
    throw std::invalid_argument("--backend must be cpu or cuda, not '" + name + "'");
}

void register_oracle_commands(CLI::App& app, int& rc) {
    static long long cases = 2000;
    static std::uint64_t seed = 1;
    auto* self = app.add_subcommand("selfcheck", "Run the oracle's own checks (closed forms, agreement, error model)");
    self->add_option("--cases", cases, "random cases for the error-model sweep")->check(CLI::Range(1LL, 100000000LL));
    self->add_option("--seed", seed, "first seed");
    self->callback([&rc] { rc = cmd_selfcheck(cases, seed); });

    static std::vector<std::string> files;
    auto* val = app.add_subcommand("validate", "Parse and validate case files");
    val->add_option("files", files, "case JSON files")->required();
    val->callback([&rc] { rc = cmd_validate(files); });

    auto* info = app.add_subcommand("info", "Build and device facts");
    info->callback([&rc] {
        fmt::print("attncheck {}\n{}\n", "0.1", device_line());
        rc = 0;
    });
}

} // namespace attncheck
