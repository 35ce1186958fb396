#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "engine/timing/phase_timer.hpp"
#include "properties/gates/gate.hpp"

namespace attncheck {

const char* gate_status_name(GateStatus s) {
    switch (s) {
        case GateStatus::pass:
            return "pass";
        case GateStatus::fail:
            return "FAIL";
        case GateStatus::skip:
            return "skip";
    }
    return "?";
}

int ratio_bucket(double ratio) {
    if (!(ratio >= 0) || std::isinf(ratio)) return ratio > 0 ? kRatioBuckets - 1 : -1;
    if (ratio == 0) return 0;
    return std::clamp(static_cast<int>(std::floor(std::log2(ratio))) + kRatioShift, 0, kRatioBuckets - 1);
}

namespace {
AttentionProblem timed_materialize(const Case& c) {
    ScopedPhase phase(Phase::materialize);
    return materialize(c);
}
} // namespace

GateContext::GateContext(Target& target, const Case& c)
    : target_(target),
      case_(c),
      problem_(timed_materialize(c)),
      profile_(target.profile(c)),
      oracle_(oracle_device_for(target)) {}

const Observation& GateContext::base() {
    if (!base_) base_ = batched_ ? answer_or_defer({-1, 0}, problem_, std::nullopt) : run(problem_);
    return *base_;
}

const ReferenceOutput& GateContext::reference() {
    if (!reference_) {
        OracleResult r = evaluate_oracle(oracle_, problem_, profile_, true);
        reference_ = std::move(r.ref);
        if (!bounds_) bounds_ = std::move(r.bounds);
    }
    return *reference_;
}

const ProblemBounds& GateContext::bounds() {
    if (!bounds_) {
        if (oracle_ == OracleDevice::gpu)
            reference(); // the GPU computes both in one pass
        else
            bounds_ = bound_problem(problem_, profile_);
    }
    return *bounds_;
}

ProblemBounds GateContext::bounds_of(const AttentionProblem& p) {
    if (!batched_) return evaluate_oracle(oracle_, p, profile_of(p), false).bounds;
    const RunKey key{gate_, bounds_ordinal_++};
    auto it = bounds_kept_.find(key);
    if (it == bounds_kept_.end())
        it = bounds_kept_.emplace(key, evaluate_oracle(oracle_, p, profile_of(p), false).bounds).first;
    return it->second;
}

std::string GateContext::unsupported(const AttentionProblem& p) const { return target_.unsupported(shape_of(p)); }

bool GateContext::supports(const AttentionProblem& p) const { return unsupported(p).empty(); }

PrecisionProfile GateContext::profile_of(const AttentionProblem& p) const { return target_.profile(shape_of(p)); }

Observation GateContext::run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    if (batched_) return answer_or_defer({gate_, run_ordinal_++}, p, probe);
    ++runs_;
    ScopedPhase phase(Phase::target);
    return target_.run(p, probe);
}

void GateContext::begin_gate(int gate) {
    gate_ = gate;
    run_ordinal_ = bounds_ordinal_ = 0;
}

Observation GateContext::answer_or_defer(const RunKey& key, const AttentionProblem& p,
                                         const std::optional<ProbeRequest>& probe) {
    const auto it = answers_.find(key);
    if (it == answers_.end()) {
        // Two gates may ask for the base run in one round: it is queued once.
        if (std::none_of(pending_.begin(), pending_.end(), [&](const PendingRun& r) { return r.key == key; }))
            pending_.push_back({key, p, probe});
        throw RunDeferred{};
    }
    const RunAnswer& a = it->second;
    if (!a.unsupported.empty()) throw UnsupportedCase(a.unsupported);
    if (!a.obs) throw std::runtime_error(a.error.empty() ? "the target answered nothing" : a.error);
    return *a.obs;
}

std::vector<GateContext::PendingRun> GateContext::take_pending() { return std::exchange(pending_, {}); }

void GateContext::answer(const RunKey& key, RunAnswer a) {
    ++runs_;
    answers_[key] = std::move(a);
}

} // namespace attncheck
