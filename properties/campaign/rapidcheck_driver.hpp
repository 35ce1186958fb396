// What every campaign that drives RapidCheck directly needs (the attention
// campaign, the model campaign): the lock around RapidCheck's global state
// and a listener that keeps RapidCheck quiet (campaigns report their own
// failures, with a gate report and a counterexample file; RapidCheck's
// default listener would also print a reproduce string at exit).
#pragma once

#include <mutex>

#include <rapidcheck.h>

namespace attncheck {

// One property check at a time per process, whichever thread runs it.
std::mutex& rapidcheck_lock();

class QuietListener final : public rc::detail::TestListener {
public:
    void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
    void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
    void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

} // namespace attncheck
