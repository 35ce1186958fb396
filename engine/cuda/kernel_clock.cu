#include "engine/cuda/kernel_clock.hpp"

#include <algorithm>

#include "engine/cuda/check.cuh"

namespace attncheck {

namespace {
thread_local KernelClock* t_clock = nullptr;

// Owns a pair of events; destroyed even when a rep throws.
struct EventPair {
    cudaEvent_t start = nullptr, stop = nullptr;
    EventPair() {
        CUDA_CHECK(cudaEventCreate(&start));
        CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~EventPair() {
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
    }
    EventPair(const EventPair&) = delete;
    EventPair& operator=(const EventPair&) = delete;
};
} // namespace

KernelClock::KernelClock(ClockPlan plan) : plan_(plan), previous_(t_clock) { t_clock = this; }
KernelClock::~KernelClock() { t_clock = previous_; }
KernelClock* KernelClock::installed() { return t_clock; }

void KernelClock::time(const std::function<void()>& enqueue) {
    for (int i = 0; i < plan_.warmup; ++i) enqueue();
    EventPair ev;
    for (int i = 0; i < plan_.reps; ++i) {
        CUDA_CHECK(cudaEventRecord(ev.start, cudaStreamPerThread));
        enqueue();
        CUDA_CHECK(cudaEventRecord(ev.stop, cudaStreamPerThread));
        CUDA_CHECK(cudaEventSynchronize(ev.stop));
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
        us_.push_back(1000.0 * ms);
    }
}

} // namespace attncheck
