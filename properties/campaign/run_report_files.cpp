#include "properties/campaign/run_report_files.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "properties/gates/gate.hpp"

namespace attncheck {

namespace {

using nlohmann::json;

// Escapes &, <, >, " for XML and HTML text and attributes.
std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    return out;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::ofstream f(p);
    f << text;
    if (!f) throw std::runtime_error(fmt::format("--report: cannot write {}", p.string()));
}

// A gate's verdict on one target over the run.
enum class Outcome { held, failed, skipped };

Outcome outcome(const TargetRun& t, const std::string& gate) {
    if (t.failure && t.failure->gate == gate) return Outcome::failed;
    const auto it = t.tallies.find(gate);
    if (it == t.tallies.end() || it->second.pass == 0) return Outcome::skipped;
    return Outcome::held;
}

std::string repro_command(const FailureRecord& f, const ReportContext& ctx) {
    return f.path.empty() ? std::string("(no counterexample file: run with --out DIR)")
                          : fmt::format("attncheck repro {}{}", f.path, ctx.plugin_args);
}

// The run report workers send their parent (run_report_json), with what a
// reader wants beside it: build and machine, the spec, cases/s, each gate's
// verdict per target, repro commands and the ledger's words for known failures.
json results_json(const RunSpec& spec, const RunReport& r, const ReportContext& ctx) {
    json j = json::parse(run_report_json(r));
    j["commit"] = ctx.commit;
    j["device"] = ctx.device;
    j["spec"] = json::parse(run_spec_json(spec));
    j["cases_per_s"] = r.cases_per_second();
    for (size_t i = 0; i < r.targets.size(); ++i) {
        const TargetRun& t = r.targets[i];
        json& tj = j["targets"][i];
        json verdicts = json::object();
        for (const Gate& g : all_gates()) {
            const Outcome o = outcome(t, g.name);
            verdicts[g.name] = o == Outcome::failed ? "failed" : o == Outcome::held ? "held" : "skipped";
        }
        tj["verdicts"] = verdicts;
        if (t.failure) tj["failure"]["repro"] = repro_command(*t.failure, ctx);
        json worst = json::array();
        for (const auto& [gate, tl] : t.tallies)
            if (tl.worst_ratio >= 0)
                worst.push_back({{"gate", gate},
                                 {"ratio", tl.worst_ratio},
                                 {"shape", tl.worst_shape},
                                 {"verdict", tl.worst_detail},
                                 {"case", tl.worst_case.empty() ? json(nullptr) : json::parse(tl.worst_case)}});
        tj["worst_rows"] = worst;
        if (ctx.ledger)
            for (json& kn : tj["known"]) {
                const KnownFailure& e = ctx.ledger->entries[kn.at(0).get<size_t>()];
                kn = {
                    {"entry", kn.at(0)}, {"cases", kn.at(1)}, {"gate", e.gate}, {"reason", e.reason}, {"link", e.link}};
            }
    }
    return j;
}

std::string junit_xml(const RunReport& r, const ReportContext& ctx) {
    long long tests = 0, failures = 0, skipped = 0;
    std::string suites;
    for (const TargetRun& t : r.targets) {
        long long ft = 0, st = 0;
        std::string cases;
        for (const Gate& g : all_gates()) {
            const Outcome o = outcome(t, g.name);
            cases += fmt::format(R"(    <testcase classname="{}" name="{}" time="0">)", escape(t.target), g.name);
            if (o == Outcome::failed) {
                ++ft;
                cases +=
                    fmt::format("\n      <failure message=\"{}\">{}\n{}</failure>\n    ", escape(t.failure->summary),
                                escape(t.failure->report), escape(repro_command(*t.failure, ctx)));
            } else if (o == Outcome::skipped) {
                ++st;
                cases += R"(<skipped message="no case exercised this gate"/>)";
            }
            cases += "</testcase>\n";
        }
        const long long n = static_cast<long long>(all_gates().size());
        tests += n;
        failures += ft;
        skipped += st;
        suites += fmt::format(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3f}\">\n{}  </testsuite>\n",
            escape(t.target), n, ft, st, t.seconds, cases);
    }
    return fmt::format(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attncheck\" tests=\"{}\" failures=\"{}\" "
        "skipped=\"{}\" time=\"{:.3f}\">\n{}</testsuites>\n",
        tests, failures, skipped, r.wall_seconds, suites);
}

// A gate's error / bound histogram (ratio_bucket's log2 buckets) as inline
// SVG: one bar per bucket, heights on a log scale of the case count (a few
// cases near the bound stay visible beside thousands far below it), a red
// line at error = bound.
std::string ratio_svg(const GateTally& t) {
    constexpr int kBar = 14, kHeight = 60;
    long long most = 1;
    for (long long n : t.ratios) most = std::max(most, n);
    std::string bars;
    for (int b = 0; b < kRatioBuckets; ++b) {
        const long long n = t.ratios[static_cast<std::size_t>(b)];
        const int h = n == 0 ? 0 : 2 + static_cast<int>((kHeight - 2) * std::log1p(n) / std::log1p(most));
        bars += fmt::format(
            R"(<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>error/bound in [2^{}, 2^{}): {} case(s)</title></rect>)",
            b * kBar, kHeight - h, kBar - 2, h, b >= kRatioShift ? "#c0392b" : "#4a7bb7", b - kRatioShift,
            b + 1 - kRatioShift, n);
    }
    const int x1 = kRatioShift * kBar - 1;
    return fmt::format(
        R"(<svg class="ratios" width="{}" height="{}" xmlns="http://www.w3.org/2000/svg">{}<line x1="{}" y1="0" x2="{}" y2="{}" stroke="red"/><text x="0" y="{}" font-size="9">2^-12</text><text x="{}" y="{}" font-size="9">1</text></svg>)",
        kRatioBuckets * kBar, kHeight + 12, bars, x1, x1, kHeight, kHeight + 10, x1 - 2, kHeight + 10);
}

// Per gate that compared against the error model, a histogram per target.
std::string ratio_section(const RunReport& r) {
    std::string rows;
    for (const Gate& g : all_gates()) {
        std::string cells;
        bool any = false;
        for (const TargetRun& t : r.targets) {
            const auto it = t.tallies.find(g.name);
            if (it == t.tallies.end() || it->second.worst_ratio < 0) {
                cells += "<td></td>";
                continue;
            }
            any = true;
            cells += fmt::format("<td>{}<br>worst {:.3g}</td>", ratio_svg(it->second), it->second.worst_ratio);
        }
        if (any) rows += fmt::format("<tr><td>{}</td>{}</tr>\n", g.name, cells);
    }
    if (rows.empty()) return "<p>no gate compared against the error model</p>\n";
    std::string head = "<tr><th>gate</th>";
    for (const TargetRun& t : r.targets) head += "<th>" + escape(t.target) + "</th>";
    return "<table>\n" + head + "</tr>\n" + rows + "</table>\n";
}

// Per target and gate, the case whose error came closest to its bound, and
// what the gate said of it: where a target is nearest to failing.
std::string worst_rows_section(const RunReport& r) {
    std::vector<std::pair<double, std::string>> rows;
    for (const TargetRun& t : r.targets)
        for (const auto& [gate, tl] : t.tallies)
            if (tl.worst_ratio >= 0)
                rows.emplace_back(tl.worst_ratio,
                                  fmt::format("<tr class=\"worst\"><td>{}</td><td>{}</td><td>{:.3g}</td>"
                                              "<td>{}</td><td>{}</td></tr>\n",
                                              escape(t.target), escape(gate), tl.worst_ratio, escape(tl.worst_shape),
                                              escape(tl.worst_detail)));
    if (rows.empty()) return "<p>no gate compared against the error model</p>\n";
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string out =
        "<table>\n<tr><th>target</th><th>gate</th><th>error / bound</th><th>case</th><th>verdict</th></tr>\n";
    for (const auto& [ratio, row] : rows) out += row;
    return out +
           "</table>\n<p>results.json has each of these cases whole (<code>worst_rows</code>): saved as a "
           "file, <code>attncheck repro</code> replays it.</p>\n";
}

std::string index_html(const RunReport& r, const ReportContext& ctx) {
    std::string head = "<tr><th>gate</th>";
    for (const TargetRun& t : r.targets) head += "<th>" + escape(t.target) + "</th>";
    head += "</tr>\n";
    std::string rows;
    for (const Gate& g : all_gates()) {
        rows += fmt::format("<tr><td title=\"{}\">{}</td>", escape(g.invariant), g.name);
        for (const TargetRun& t : r.targets) {
            const GateTally tl = t.tallies.count(g.name) ? t.tallies.at(g.name) : GateTally{};
            const Outcome o = outcome(t, g.name);
            const char* cls = o == Outcome::failed ? "failed" : o == Outcome::held ? "held" : "skipped";
            rows += fmt::format("<td class=\"{}\">{} held, {} failed, {} skipped</td>", cls, tl.pass, tl.fail, tl.skip);
        }
        rows += "</tr>\n";
    }
    std::string failures;
    for (const TargetRun& t : r.targets) {
        if (t.failure) {
            std::string steps;
            for (const std::string& shape : t.failure->shrink_trajectory) steps += "<li>" + escape(shape) + "</li>";
            failures += fmt::format(
                "<h3 class=\"failed\">{}: gate {} failed</h3>\n<p>{}</p>\n<pre>{}</pre>\n<p><code>{}</code></p>\n"
                "<p>Shrunk in {} steps, through these shapes:</p>\n<ol class=\"shrink\">{}</ol>\n",
                escape(t.target), escape(t.failure->gate), escape(t.failure->summary), escape(t.failure->report),
                escape(repro_command(*t.failure, ctx)), t.failure->shrink_steps, steps);
        }
        for (const auto& [k, n] : t.known)
            failures += fmt::format(
                "<p class=\"known\">{}: {} case(s) failed as ledger entry {} says{}</p>\n", escape(t.target), n, k,
                ctx.ledger ? ": " + escape(ctx.ledger->entries[static_cast<size_t>(k)].reason) : std::string());
    }
    for (const auto& e : r.worker_errors) failures += "<p class=\"failed\">" + escape(e) + "</p>\n";
    return fmt::format(R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>attncheck run</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
table{{border-collapse:collapse}}.held{{background:#e6f4e6}}.failed{{background:#f8d7d7}}
.skipped{{background:#f2f2f2;color:#777}}.known{{background:#fff3cd}}pre{{background:#f7f7f7;padding:1em}}</style>
</head><body>
<h1>attncheck run</h1>
<p>{} cases in {:.1f} s ({:.1f} cases/s, {} worker(s)); commit {}; {}</p>
<table>
{}{}</table>
<h2>Error / bound</h2>
<p>Each case's largest error over its bound, for the gates that compare against the error model
(docs/error-model.md), in powers of two from 2^-12; red: at or past the bound.</p>
{}
<h2>Worst rows</h2>
<p>Per target and gate, the case that came closest to its bound, worst first.</p>
{}
<h2>Failures</h2>
{}
</body></html>
)",
                       r.cases, r.wall_seconds, r.cases_per_second(), r.workers, escape(ctx.commit), escape(ctx.device),
                       head, rows, ratio_section(r), worst_rows_section(r),
                       failures.empty() ? "<p>none</p>" : failures);
}

} // namespace

void write_run_report(const std::string& dir, const RunSpec& spec, const RunReport& r, const ReportContext& ctx) {
    std::filesystem::create_directories(dir);
    write_file(std::filesystem::path(dir) / "results.json", results_json(spec, r, ctx).dump(2) + "\n");
    write_file(std::filesystem::path(dir) / "junit.xml", junit_xml(r, ctx));
    write_file(std::filesystem::path(dir) / "index.html", index_html(r, ctx));
}

} // namespace attncheck
