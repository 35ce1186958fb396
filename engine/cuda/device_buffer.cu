// The pool allocator and the batched guard-band check behind DeviceBuffer.
//
// The check: one block per buffer scans its two bands (2 * kGuardBytes
// bytes) and records the first changed byte with atomicMin; the results for
// up to kMaxRegions buffers come back in one copy. It runs after the target's
// kernels on the same stream, so it sees their writes. Interleaved jobs
// (engine/fiber/interleave.hpp) leave their checks to the release that
// ends their wait: one launch and one copy for all of them.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/cuda/device.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "engine/fiber/interleave.hpp"
#include "engine/timing/phase_timer.hpp"

namespace attncheck {

namespace {

cudaMemPool_t thread_pool() {
    thread_local std::map<int, cudaMemPool_t> pools; // by device; never destroyed (see cublas_handle.hpp)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    cudaMemPool_t& pool = pools[dev];
    if (!pool) {
        cudaMemPoolProps props{};
        props.allocType = cudaMemAllocationTypePinned;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = dev;
        CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
        // Keep freed blocks cached: returning them to the driver at every
        // synchronization would make each case pay for fresh mappings again.
        std::uint64_t keep = UINT64_MAX;
        CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    }
    return pool;
}

constexpr int kMaxRegions = 128; // 2 KiB of kernel parameters

struct RegionTable {
    const unsigned char* raw[kMaxRegions];
    unsigned long long payload[kMaxRegions];
};

__global__ void guard_check_kernel(RegionTable t, int* first_bad) {
    __shared__ int block_min;
    if (threadIdx.x == 0) block_min = INT_MAX;
    __syncthreads();
    const unsigned char* base = t.raw[blockIdx.x];
    const unsigned long long payload = t.payload[blockIdx.x];
    for (unsigned long long i = threadIdx.x; i < 2 * kGuardBytes; i += blockDim.x) {
        // Front band [0, G), back band [G + payload, 2G + payload); the
        // reported offset is into the band pair (as the host formats it).
        const unsigned long long at = i < kGuardBytes ? i : i + payload;
        if (base[at] != kGuardByte) atomicMin(&block_min, static_cast<int>(i));
    }
    __syncthreads();
    if (threadIdx.x == 0) first_bad[blockIdx.x] = block_min;
}

// Device ints and their pinned mirror, grown to the most asked for.
struct ResultSlots {
    int* dev = nullptr;
    int* host = nullptr;
    int cap = 0;
    void reserve(int n) {
        if (n <= cap) return;
        // Only between synchronizations: no copy of the old slots is in flight.
        if (dev) CUDA_CHECK(cudaFree(dev));
        if (host) CUDA_CHECK(cudaFreeHost(host));
        cap = std::max(n, 2 * cap);
        CUDA_CHECK(cudaMalloc(&dev, static_cast<std::size_t>(cap) * sizeof(int)));
        CUDA_CHECK(cudaMallocHost(&host, static_cast<std::size_t>(cap) * sizeof(int)));
    }
};

// The calling thread's slots for checks it waits for itself.
ResultSlots& thread_slots() {
    thread_local std::map<int, ResultSlots> slots; // by device; never freed (see cublas_handle.hpp)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    ResultSlots& s = slots[dev];
    s.reserve(kMaxRegions);
    return s;
}

// The first changed byte of each region's bands (INT_MAX: none), for
// `n` regions from `regions`, into `out`: one launch per kMaxRegions and one
// copy back, enqueued behind everything on the thread's stream; the caller
// synchronizes.
void enqueue_guard_checks(const GuardRegion* const* regions, int n, int* dev_out, int* host_out) {
    for (int b = 0; b < n; b += kMaxRegions) {
        RegionTable t{};
        const int m = std::min(kMaxRegions, n - b);
        for (int r = 0; r < m; ++r) {
            t.raw[r] = static_cast<const unsigned char*>(regions[b + r]->raw);
            t.payload[r] = regions[b + r]->payload_bytes;
        }
        guard_check_kernel<<<m, 256, 0, cudaStreamPerThread>>>(t, dev_out + b);
        CUDA_CHECK_LAUNCH();
    }
    if (n) CUDA_CHECK(cudaMemcpyAsync(host_out, dev_out, n * sizeof(int), cudaMemcpyDeviceToHost, cudaStreamPerThread));
}

// Throws GuardBandError for the first region whose band changed.
void throw_first_bad(const std::string* const* names, const int* first_bad, int n) {
    for (int r = 0; r < n; ++r) {
        const int i = first_bad[r];
        if (i == INT_MAX) continue;
        const bool before = static_cast<std::size_t>(i) < kGuardBytes;
        // Negative: before the payload; otherwise bytes past its end.
        const long long off = static_cast<long long>(i) - static_cast<long long>(kGuardBytes);
        throw GuardBandError(*names[r] + ": device guard band overwritten at byte " + std::to_string(off) +
                             (before ? " before the buffer" : " past the end"));
    }
}

// Interleaved jobs (engine/fiber/interleave.hpp) leave their regions here
// and wait; the release checks every waiting job's regions with one launch
// (per kMaxRegions) and one copy back before its synchronization, and the
// jobs read their verdicts when they resume. Two API calls a release
// instead of two a run.
struct SharedGuardChecks {
    std::vector<GuardRegion> pending; // regions of the jobs waiting now
    std::vector<int> released;        // the last release's verdicts, by position in its pending list
    ResultSlots slots;
};

SharedGuardChecks& thread_shared_checks() {
    thread_local std::map<int, SharedGuardChecks> checks; // by device; never freed (see cublas_handle.hpp)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    return checks[dev];
}

template <class It>
void check_range(It first, It last) {
    std::vector<const GuardRegion*> live;
    for (; first != last; ++first)
        if (first->raw) live.push_back(&*first); // skip empty, moved-from buffers
    if (live.empty()) return;
    std::vector<const std::string*> names;
    for (const GuardRegion* g : live) names.push_back(g->name);
    const int n = static_cast<int>(live.size());
    if (fiber_slot() > 0) {
        SharedGuardChecks& sc = thread_shared_checks();
        const std::size_t at = sc.pending.size();
        for (const GuardRegion* g : live) sc.pending.push_back(*g);
        sync_thread_stream(); // the release checks them
        throw_first_bad(names.data(), sc.released.data() + at, n);
        return;
    }
    ResultSlots& s = thread_slots();
    for (int b = 0; b < n; b += kMaxRegions) {
        const int m = std::min(kMaxRegions, n - b);
        enqueue_guard_checks(live.data() + b, m, s.dev, s.host);
        sync_thread_stream();
        throw_first_bad(names.data() + b, s.host, m);
    }
}

} // namespace

namespace {

// Blocks this thread freed, by size class, handed out again without a CUDA
// call. A run allocates and frees a few blocks; with many worker threads
// the allocator's calls (each takes the context's lock) cost more than the
// run's kernels. Reuse needs no synchronization: the block's next user is
// enqueued on the same stream as its last. Classes are powers of two from
// 64 KiB; at most kCacheBytes stay cached per thread and device.
constexpr std::size_t kMinClass = std::size_t{1} << 16;
constexpr std::size_t kCacheBytes = std::size_t{1} << 30;

struct BlockCache {
    std::map<std::size_t, std::vector<void*>> free;  // by class
    std::unordered_map<void*, std::size_t> class_of; // blocks handed out
    std::size_t cached = 0;
};

BlockCache& thread_cache() {
    thread_local std::map<int, BlockCache> caches; // by device; never freed (see cublas_handle.hpp)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    return caches[dev];
}

std::size_t size_class(std::size_t bytes) {
    std::size_t c = kMinClass;
    while (c < bytes) c *= 2;
    return c;
}

} // namespace

void* pool_alloc(std::size_t bytes) {
    BlockCache& cache = thread_cache();
    const std::size_t cls = size_class(bytes);
    void* p = nullptr;
    auto& list = cache.free[cls];
    if (!list.empty()) {
        p = list.back();
        list.pop_back();
        cache.cached -= cls;
    } else {
        CUDA_CHECK(cudaMallocFromPoolAsync(&p, cls, thread_pool(), cudaStreamPerThread));
    }
    if (reinterpret_cast<std::uintptr_t>(p) % kPayloadAlign != 0)
        throw std::logic_error("pool_alloc: the memory pool returned a block not aligned to 256 bytes");
    cache.class_of[p] = cls;
    return p;
}

void pool_free(void* p) noexcept {
    if (!p) return;
    // Destructor path: errors surface on the next checked call.
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return;
    BlockCache& cache = thread_cache();
    const auto it = cache.class_of.find(p);
    if (it == cache.class_of.end() || cache.cached + it->second > kCacheBytes) {
        if (it != cache.class_of.end()) cache.class_of.erase(it);
        cudaFreeAsync(p, cudaStreamPerThread); // another thread's block, or the cache is full
        return;
    }
    cache.free[it->second].push_back(p);
    cache.cached += it->second;
    cache.class_of.erase(it);
}

namespace {

struct Stage {
    unsigned char* p = nullptr;
    std::size_t cap = 0, used = 0;
};

// By device and fiber slot: an interleaved job reads what it downloaded
// after a wait in which other jobs stage their own runs; a region of its
// own stage is reused only after its own next wait.
Stage& thread_stage() {
    thread_local std::map<std::pair<int, int>, Stage> stages; // never freed (see cublas_handle.hpp)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    return stages[{dev, fiber_slot()}];
}

} // namespace

unsigned char* PinnedStage::take(std::size_t bytes) {
    Stage& st = thread_stage();
    bytes = (bytes + kPayloadAlign - 1) / kPayloadAlign * kPayloadAlign;
    if (st.used + bytes > st.cap) {
        sync_thread_stream(); // every copy through the stage is done
        st.used = 0;
        if (4 * bytes > st.cap) {
            if (st.p) CUDA_CHECK(cudaFreeHost(st.p));
            // Fibers' stages start smaller: a thread interleaves a dozen jobs.
            const std::size_t least = std::size_t{fiber_slot() ? 4u : 8u} << 20;
            st.cap = std::max<std::size_t>({4 * bytes, 2 * st.cap, least});
            void* p = nullptr;
            CUDA_CHECK(cudaMallocHost(&p, st.cap));
            st.p = static_cast<unsigned char*>(p);
        }
    }
    unsigned char* out = st.p + st.used;
    st.used += bytes;
    return out;
}

unsigned char* DeviceArena::begin_image() {
    image_ = PinnedStage::take(total_);
    for (size_t i = 0; i < payloads_.size(); ++i) {
        const Payload& r = payloads_[i];
        const std::size_t end = i + 1 < payloads_.size() ? payloads_[i + 1].region : total_;
        std::memset(image_ + r.region, kGuardByte, kGuardBytes);           // front band
        std::memset(image_ + r.region + kGuardBytes + r.bytes, kGuardByte, // back band and padding
                    end - (r.region + kGuardBytes + r.bytes));
    }
    return image_;
}

void DeviceArena::upload() {
    raw_ = pool_alloc(std::max<std::size_t>(total_, 1));
    if (total_) CUDA_CHECK(cudaMemcpyAsync(raw_, image_, total_, cudaMemcpyHostToDevice, cudaStreamPerThread));
}

void sync_thread_stream() {
    if (wait_in_fiber()) return;
    release_thread_stream();
}

void release_thread_stream() {
    ScopedPhase wait(Phase::device_wait);
    SharedGuardChecks& sc = thread_shared_checks();
    const std::vector<GuardRegion> regions = std::exchange(sc.pending, {});
    const int n = static_cast<int>(regions.size());
    if (n) {
        std::vector<const GuardRegion*> ptrs;
        for (const GuardRegion& g : regions) ptrs.push_back(&g);
        sc.slots.reserve(n);
        enqueue_guard_checks(ptrs.data(), n, sc.slots.dev, sc.slots.host);
    }
    CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
    sc.released.assign(sc.slots.host, sc.slots.host + n);
}

void check_guard_bands(std::initializer_list<GuardRegion> regions) { check_range(regions.begin(), regions.end()); }
void check_guard_bands(const std::vector<GuardRegion>& regions) { check_range(regions.begin(), regions.end()); }

} // namespace attncheck
