// `attncheck run --report DIR`: what a run leaves behind for people and for
// CI dashboards.
//   results.json  the run: its spec, figures and phases, and per target the
//                 cases, per-gate tallies (with the error/bound histogram
//                 and worst ratio) and verdicts, the failure (gate,
//                 summary, stage report, counterexample file, repro command)
//                 and the known failures it met;
//   junit.xml     one testsuite per target, one testcase per gate: failed
//                 (with the summary and the stage report) where that gate
//                 failed, skipped where it judged no case, passed otherwise;
//   index.html    the same as a page: a table of targets x gates, the
//                 error/bound histograms (inline SVG) of the gates that
//                 compare against the error model, per target, then each
//                 failure with its report and repro command
//                 (tests/render_report.py renders it in headless Chromium).
#pragma once

#include <string>

#include "properties/campaign/known_failures.hpp"
#include "properties/campaign/parallel_run.hpp"

namespace attncheck {

struct ReportContext {
    std::string commit, device; // build and machine, as the run printed them
    const Ledger* ledger = nullptr;
    std::string plugin_args; // " --plugin LIB" for repro commands of plugin targets
};

// Creates DIR if needed; throws std::runtime_error when a file cannot be written.
void write_run_report(const std::string& dir, const RunSpec& spec, const RunReport& r, const ReportContext& ctx);

} // namespace attncheck
