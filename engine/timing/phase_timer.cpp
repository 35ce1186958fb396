#include "engine/timing/phase_timer.hpp"

#include <utility>
#include <vector>

namespace attncheck {

namespace {

using Clock = std::chrono::steady_clock;

struct ThreadTimer {
    PhaseTotals totals;
    // phases.stack.back() is the phase being charged (`other` when empty);
    // phases.exclusive > 0: nested scopes charge the exclusive phase.
    PhaseStack phases;
    Clock::time_point since = Clock::now();

    void charge_until(Clock::time_point now) {
        const Phase p = phases.stack.empty() ? Phase::other : phases.stack.back();
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
    active_ = t.phases.exclusive == 0;
    if (!active_) return;
    t.charge_until(Clock::now());
    t.phases.stack.push_back(p);
    ++t.totals.entries[static_cast<int>(p)];
}

ScopedPhase::~ScopedPhase() {
    if (!active_) return;
    ThreadTimer& t = timer();
    t.charge_until(Clock::now());
    t.phases.stack.pop_back();
}

ExclusivePhase::ExclusivePhase(Phase p) : scope_(p) { ++timer().phases.exclusive; }

ExclusivePhase::~ExclusivePhase() { --timer().phases.exclusive; }

void swap_phase_stack(PhaseStack& other) {
    ThreadTimer& t = timer();
    t.charge_until(Clock::now());
    std::swap(t.phases, other);
}

} // namespace attncheck
