// Kernel timing for `attncheck bench kernels`, through the ordinary target
// path. A benchmark installs a KernelClock on its thread and runs a target as
// usual; each kernel family wraps the launches of one run in
// timed_kernels(...). With a clock installed those launches run `warmup`
// times untimed, then `reps` times, each rep between two CUDA events on the
// thread's stream, and the clock keeps each rep's time; without one they run
// once. Every rep recomputes the same outputs from the same inputs, so the
// run's download and guard-band check after the reps still hold.
//
// A clock also lets a problem carry no values (problem_shape of a Case):
// DeviceProblem then fills Q, K and V on the device with seeded uniform
// values in [-1, 1) (never zeros), so gigabyte bench shapes are never
// materialized on the host.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace attncheck {

struct ClockPlan {
    int warmup = 3;
    int reps = 20;
    std::uint64_t fill_seed = 1; // the device fill of a problem without values
};

class KernelClock {
public:
    explicit KernelClock(ClockPlan plan); // installs itself on this thread
    ~KernelClock();                       // and uninstalls
    KernelClock(const KernelClock&) = delete;
    KernelClock& operator=(const KernelClock&) = delete;

    static KernelClock* installed(); // this thread's, or nullptr
    const ClockPlan& plan() const { return plan_; }
    // Microseconds of each timed rep, in order (all runs since installed).
    const std::vector<double>& rep_us() const { return us_; }
    void time(const std::function<void()>& enqueue);

private:
    ClockPlan plan_;
    std::vector<double> us_;
    KernelClock* previous_;
};

// The launches of one target run. Throws what enqueue throws.
template <class F>
void timed_kernels(F&& enqueue) {
    if (KernelClock* c = KernelClock::installed())
        c->time(enqueue);
    else
        enqueue();
}

} // namespace attncheck
