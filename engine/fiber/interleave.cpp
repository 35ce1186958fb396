// Fibers on ucontext: makecontext gives each job its own stack and
// swapcontext switches between a job and the scheduler (the calling
// thread's own stack). swapcontext also saves the signal mask, a system
// call per switch (under a microsecond); a case switches a few dozen
// times, against milliseconds of work.
#include "engine/fiber/interleave.hpp"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cxxabi.h>

#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <utility>

#include "engine/timing/phase_timer.hpp"

namespace attncheck {

namespace {

// libstdc++'s per-thread exception state (its unwind-cxx.h): the chain of
// exceptions being handled and the count of those thrown and not yet
// caught. A job that waits inside a catch block, or while unwinding, must
// find its own when it resumes, and must not leave it to the next job.
struct EhGlobals {
    void* caught = nullptr;
    unsigned int uncaught = 0;
};
EhGlobals& thread_eh_globals() { return *reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals()); }

enum class FiberState { ready, waiting, done };

struct Fiber {
    ucontext_t context{};
    unsigned char* mapping = nullptr; // guard page, then the stack
    std::size_t mapping_bytes = 0;
    unsigned char* stack = nullptr; // past the guard page
    const std::function<void()>* job = nullptr;
    std::exception_ptr error;
    FiberState state = FiberState::done;
    // The thread's state while the fiber is switched out (the scheduler's
    // while it runs): swapped on every switch.
    PhaseStack phases;
    EhGlobals eh;

    Fiber() {
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        mapping_bytes = kFiberStackBytes + page;
        void* m =
            mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) throw std::bad_alloc();
        mapping = static_cast<unsigned char*>(m);
        stack = mapping + page;
        // A stack that overflows faults on the guard page instead of
        // writing over the next fiber's.
        if (mprotect(mapping, page, PROT_NONE) != 0) {
            munmap(mapping, mapping_bytes);
            throw std::runtime_error("run_interleaved: could not protect a fiber's guard page");
        }
    }
    ~Fiber() { munmap(mapping, mapping_bytes); }
    Fiber(const Fiber&) = delete;
    Fiber& operator=(const Fiber&) = delete;
};

struct Scheduler {
    ucontext_t home{}; // the calling thread's own stack
    std::vector<std::unique_ptr<Fiber>>* fibers = nullptr;
    int current = -1;                 // the running fiber; -1: the scheduler
    std::exception_ptr release_error; // what the last release() threw, for the fibers that waited on it
};

thread_local Scheduler* t_scheduler = nullptr;

std::vector<std::unique_ptr<Fiber>>& thread_fibers() {
    thread_local std::vector<std::unique_ptr<Fiber>> fibers; // stacks kept for the next run
    return fibers;
}

void fiber_main() {
    Scheduler& s = *t_scheduler;
    Fiber& f = *(*s.fibers)[static_cast<std::size_t>(s.current)];
    try {
        (*f.job)();
    } catch (...) {
        f.error = std::current_exception();
    }
    f.state = FiberState::done;
    // Returning resumes uc_link: the scheduler's swapcontext.
}

// Switches to fiber i until it waits or ends; the thread's phase stack and
// exception state go with whoever runs.
void enter(Scheduler& s, int i) {
    Fiber& f = *(*s.fibers)[static_cast<std::size_t>(i)];
    swap_phase_stack(f.phases);
    std::swap(thread_eh_globals(), f.eh);
    s.current = i;
    if (swapcontext(&s.home, &f.context) != 0) throw std::runtime_error("run_interleaved: swapcontext failed");
    s.current = -1;
    std::swap(thread_eh_globals(), f.eh);
    swap_phase_stack(f.phases);
}

} // namespace

void run_interleaved(const std::vector<std::function<void()>>& jobs, const std::function<void()>& release) {
    if (t_scheduler) throw std::logic_error("run_interleaved: already inside run_interleaved on this thread");
    auto& fibers = thread_fibers();
    while (fibers.size() < jobs.size()) fibers.push_back(std::make_unique<Fiber>());
    Scheduler s;
    s.fibers = &fibers;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        Fiber& f = *fibers[i];
        if (getcontext(&f.context) != 0) throw std::runtime_error("run_interleaved: getcontext failed");
        f.context.uc_stack.ss_sp = f.stack;
        f.context.uc_stack.ss_size = kFiberStackBytes;
        f.context.uc_link = &s.home;
        makecontext(&f.context, fiber_main, 0);
        f.job = &jobs[i];
        f.error = nullptr;
        f.state = FiberState::ready;
        f.phases = {};
        f.eh = {};
    }
    struct Installed {
        explicit Installed(Scheduler* s) { t_scheduler = s; }
        ~Installed() { t_scheduler = nullptr; }
    } installed(&s);

    std::size_t left = jobs.size();
    while (left > 0) {
        for (std::size_t i = 0; i < jobs.size(); ++i) {
            if (fibers[i]->state != FiberState::ready) continue;
            enter(s, static_cast<int>(i));
            if (fibers[i]->state == FiberState::done) --left;
        }
        if (left == 0) break;
        // Every unfinished job waits: one release for all of them.
        s.release_error = nullptr;
        try {
            release();
        } catch (...) {
            s.release_error = std::current_exception();
        }
        for (std::size_t i = 0; i < jobs.size(); ++i)
            if (fibers[i]->state == FiberState::waiting) fibers[i]->state = FiberState::ready;
    }
    for (std::size_t i = 0; i < jobs.size(); ++i)
        if (fibers[i]->error) std::rethrow_exception(fibers[i]->error);
}

bool wait_in_fiber() {
    Scheduler* s = t_scheduler;
    if (!s || s->current < 0) return false;
    Fiber& f = *(*s->fibers)[static_cast<std::size_t>(s->current)];
    f.state = FiberState::waiting;
    if (swapcontext(&f.context, &s->home) != 0) throw std::runtime_error("run_interleaved: swapcontext failed");
    if (s->release_error) std::rethrow_exception(s->release_error);
    return true;
}

int fiber_slot() {
    const Scheduler* s = t_scheduler;
    return s && s->current >= 0 ? s->current + 1 : 0;
}

} // namespace attncheck
