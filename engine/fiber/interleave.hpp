// Interleaved checks: many cases on one thread, their device waits shared.
//
// A CUDA case is a few dozen short runs, and each run ends in a wait for the
// device (its outputs and guard bands come back). One case after another,
// a thread pays one synchronization per run, and with many threads on one
// context those synchronizations, not the GPU, bound the suite's speed.
// run_interleaved runs each job (one case's whole check) on its own fiber
// of the calling thread. A job that waits (wait_in_fiber(), called by the
// CUDA layer's stream synchronization) yields; when every unfinished job
// waits, release() runs once (it synchronizes the thread's stream, so every
// job's copies are done) and they all go on. The gates, the targets and the
// oracle are unchanged: they run as they would one case at a time, and
// their work is enqueued on the device side by side.
//
// Fibers switch only at those waits, on one thread: no locks, and the
// order of everything a job does is the order it would have alone. Each
// fiber keeps its own phase-timer stack and its own C++ exception state
// (a job may wait inside a catch block). Per-job resources that live
// across a wait (pinned staging, guard-check slots) are kept per
// fiber_slot().
//
// Where it pays (bench/results/2026-12-02-h200-interleave/): a context
// with one thread, or a process of its own under MPS. Many threads in one
// context that no longer wait all issue CUDA calls at once, and the
// context's lock, not the waits, then bounds them.
#pragma once

#include <functional>
#include <vector>

namespace attncheck {

// Runs every job on its own fiber and returns when all have ended. Each
// job's exception is caught; the first (in job order) is rethrown after all
// jobs ended. When release() throws, the waiting jobs see its exception
// thrown from their wait_in_fiber() and unwind.
void run_interleaved(const std::vector<std::function<void()>>& jobs, const std::function<void()>& release);

// Inside run_interleaved: suspends the job until the next release() and
// returns true. Outside: returns false at once (the caller waits itself).
bool wait_in_fiber();

// 0 outside run_interleaved; job k's fiber is slot k + 1. Slots are reused
// by the next run_interleaved on the thread.
int fiber_slot();

// Bytes of stack each fiber gets (mapped lazily, with a guard page below).
inline constexpr std::size_t kFiberStackBytes = std::size_t{1} << 20;

} // namespace attncheck
