// Where the time of a check goes: every case passes through a few phases
// (generate, materialize, target, oracle, gates, shrink), and a
// ScopedPhase charges the wall time spent inside it to its phase, on this
// thread. Phases nest: entering one pauses the enclosing one, so each second
// is charged once (exclusive time). While shrinking, the campaign holds the
// shrink phase exclusively: the runs and oracle calls made to shrink a
// failure are shrinking's cost, not checking's.
//
// For CUDA, transfer (filling pinned images, converting results) and
// device_wait (blocked in a synchronization: the GPU's own time, and its
// queue) are charged apart from the target and the oracle they serve.
//
// Cheap enough to leave on: two steady_clock reads per scope, no locks.
// `attncheck bench throughput` and `attncheck run` print the totals.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <vector>

namespace attncheck {

#define ATTNCHECK_PHASES(P)                                                          \
    P(generate, "drawing a case (generators, RapidCheck)")                           \
    P(materialize, "turning a Case into input values")                               \
    P(target, "the target's own run (CUDA: its launches)")                           \
    P(oracle, "the fp64 reference and the error bound")                              \
    P(transfer, "CUDA: staging inputs and outputs on the host (target, GPU oracle)") \
    P(device_wait, "CUDA: waiting for the device's kernels and copies")              \
    P(gates, "gate logic: transforms, comparisons, verdicts")                        \
    P(shrink, "shrinking a failure to a minimal case (everything it runs)")          \
    P(other, "the rest: campaign bookkeeping, reports")

enum class Phase : int {
#define ATTNCHECK_PHASE_ENUM(name, ...) name,
    ATTNCHECK_PHASES(ATTNCHECK_PHASE_ENUM)
#undef ATTNCHECK_PHASE_ENUM
        count_
};

inline constexpr int kPhaseCount = static_cast<int>(Phase::count_);
const char* phase_name(Phase p);
const char* phase_description(Phase p);

struct PhaseTotals {
    std::array<double, kPhaseCount> seconds{};
    // Scopes entered per phase (target: runs; oracle: evaluations), so a
    // profile says how many of each a case costs, not only how long.
    std::array<long long, kPhaseCount> entries{};
    double total() const;
    PhaseTotals& operator+=(const PhaseTotals& o);
};

// This thread's totals so far (since the thread started or the last reset).
PhaseTotals phase_totals();
void reset_phase_totals();

class ScopedPhase {
public:
    explicit ScopedPhase(Phase p);
    ~ScopedPhase();
    ScopedPhase(const ScopedPhase&) = delete;
    ScopedPhase& operator=(const ScopedPhase&) = delete;

private:
    bool active_;
};

// Holds `p` exclusively for its lifetime: phases entered inside are charged
// to `p` too (used for shrinking).
class ExclusivePhase {
public:
    explicit ExclusivePhase(Phase p);
    ~ExclusivePhase();
    ExclusivePhase(const ExclusivePhase&) = delete;
    ExclusivePhase& operator=(const ExclusivePhase&) = delete;

private:
    ScopedPhase scope_;
};

// The phases a fiber is inside (engine/fiber/interleave.hpp). When the
// thread switches fibers, the time so far is charged to the phase being
// left and the thread's stack is swapped with the fiber's: a fiber that
// waits inside a phase is not charged for the time others run.
struct PhaseStack {
    std::vector<Phase> stack;
    int exclusive = 0;
};
void swap_phase_stack(PhaseStack& other);

} // namespace attncheck
