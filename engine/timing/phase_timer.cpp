#include "engine/timing/phase_timer.hpp"

#include <vector>

namespace attncheck {

namespace {

using Clock = std::chrono::steady_clock;

struct ThreadTimer {
    PhaseTotals totals;
    std::vector<Phase> stack; // the phase being charged is stack.back(); `other` when empty
    Clock::time_point since = Clock::now();
    int exclusive = 0; // > 0: nested scopes charge the exclusive phase

    void charge_until(Clock::time_point now) {
        const Phase p = stack.empty() ? Phase::other : stack.back();
        totals.seconds[static_cast<int>(p)] += std::chrono::duration<double>(now - since).count();
        since = now;
    }
};

ThreadTimer& timer() {
    thread_local ThreadTimer t;
    return t;
}

} // namespace

const char* phase_name(Phase p) {
    switch (p) {
#define ATTNCHECK_PHASE_NAME(name, ...) \
    case Phase::name:                   \
        return #name;
        ATTNCHECK_PHASES(ATTNCHECK_PHASE_NAME)
#undef ATTNCHECK_PHASE_NAME
        default:
            return "?";
    }
}

const char* phase_description(Phase p) {
    switch (p) {
#define ATTNCHECK_PHASE_DESC(name, desc) \
    case Phase::name:                    \
        return desc;
        ATTNCHECK_PHASES(ATTNCHECK_PHASE_DESC)
#undef ATTNCHECK_PHASE_DESC
        default:
            return "?";
    }
}

double PhaseTotals::total() const {
    double s = 0;
    for (double x : seconds) s += x;
    return s;
}

PhaseTotals& PhaseTotals::operator+=(const PhaseTotals& o) {
    for (int i = 0; i < kPhaseCount; ++i) {
        seconds[i] += o.seconds[i];
        entries[i] += o.entries[i];
    }
    return *this;
}

PhaseTotals phase_totals() {
    ThreadTimer& t = timer();
    t.charge_until(Clock::now());
    return t.totals;
}

void reset_phase_totals() {
    ThreadTimer& t = timer();
    t.charge_until(Clock::now());
    t.totals = {};
}

ScopedPhase::ScopedPhase(Phase p) {
    ThreadTimer& t = timer();
    active_ = t.exclusive == 0;
    if (!active_) return;
    t.charge_until(Clock::now());
    t.stack.push_back(p);
    ++t.totals.entries[static_cast<int>(p)];
}

ScopedPhase::~ScopedPhase() {
    if (!active_) return;
    ThreadTimer& t = timer();
    t.charge_until(Clock::now());
    t.stack.pop_back();
}

ExclusivePhase::ExclusivePhase(Phase p) : scope_(p) { ++timer().exclusive; }

ExclusivePhase::~ExclusivePhase() { --timer().exclusive; }

} // namespace attncheck
