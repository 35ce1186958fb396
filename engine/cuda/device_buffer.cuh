// Device buffers with NaN poisoning and guard bands. Every kernel output is
// poisoned before the launch and every buffer's guard bands are checked
// after; a guard band that changed means an out-of-bounds write (bug class
// 9), reported with the buffer's name and the offset.
//
// Speed (a case runs its target a dozen times, so per-run overhead is the
// suite's throughput): buffers come from the device's stream-ordered memory
// pool (cudaMallocAsync: no cudaMalloc per case, and no cudaFree, which
// synchronizes the whole device and would serialize every worker thread);
// every call goes to the calling thread's default stream (the build defines
// CUDA_API_PER_THREAD_DEFAULT_STREAM), so the worker threads of a parallel
// run overlap on the GPU; and the guard bands of many buffers are checked by
// one kernel and one copy back (check_guard_bands), not two copies each.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/cuda/check.cuh"
#include "engine/cuda/device.hpp"
#include "engine/targets/guarded_buffer.hpp"

namespace attncheck {

// Bytes of guard on each side: 512 elements of the widest type used (fp32).
inline constexpr std::size_t kGuardBytes = kGuardElems * 4;
inline constexpr unsigned char kGuardByte = 0xa5;  // fp16 0xa5a5 / fp32 0xa5a5a5a5: unusual finite values
inline constexpr unsigned char kPoisonByte = 0xff; // all-ones: NaN in fp32, fp16 and bf16
// Payloads start this aligned (cuBLAS picks kernels by operand alignment;
// kernels/standard_path relies on it).
inline constexpr std::size_t kPayloadAlign = 256;

// Raw stream-ordered allocation from the calling thread's own pool on the
// current device, which keeps freed memory for reuse instead of returning it
// to the driver. One pool per thread: with a shared pool, a block freed on
// one thread's stream and reused on another's makes the second stream wait
// for the first (the pool inserts that dependency), which chains the worker
// threads' GPU work together.
void* pool_alloc(std::size_t bytes);
void pool_free(void* p) noexcept;

// The calling thread's pinned host staging area. Copies from pageable memory
// go through the driver's one staging buffer, which serializes every worker
// thread of a run (and may wait for the stream); copies from pinned memory
// are truly asynchronous. One region per thread (and device), handed out
// front to back: take(bytes) returns the next `bytes`, so the uploads of a
// run (its inputs, a target's tables) never wait for each other. When the
// region is used up, take() synchronizes the thread's stream (every copy
// that read or wrote it is then done) and starts again at its front,
// growing it if one request is larger than a quarter of it. Downloads read
// their bytes only after synchronizing the stream, as before.
struct PinnedStage {
    static unsigned char* take(std::size_t bytes);
};

// One buffer's guard bands, for check_guard_bands.
struct GuardRegion {
    const void* raw = nullptr; // start of the front band
    std::size_t payload_bytes = 0;
    const std::string* name = nullptr;
};
// Checks the two bands of every region with one launch and one copy back
// (synchronizing the calling thread's stream); throws GuardBandError naming
// the first region whose band changed and the offset of the first byte.
void check_guard_bands(std::initializer_list<GuardRegion> regions);
void check_guard_bands(const std::vector<GuardRegion>& regions);

// A guarded region's size in an arena: both bands, the payload, and padding
// to keep the next region's payload 256-byte aligned.
inline std::size_t guarded_region_bytes(std::size_t payload_bytes) {
    return (2 * kGuardBytes + payload_bytes + kPayloadAlign - 1) / kPayloadAlign * kPayloadAlign;
}

template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    // Owning: its own pool block, bands written on the device.
    DeviceBuffer(std::size_t n, std::string name) : n_(n), name_(std::move(name)) {
        raw_ = pool_alloc(bytes() + 2 * kGuardBytes);
        CUDA_CHECK(cudaMemsetAsync(raw_, kGuardByte, bytes() + 2 * kGuardBytes, cudaStreamPerThread));
    }
    // A view of a region of a DeviceArena, which owns the memory and wrote
    // the bands.
    struct View {};
    DeviceBuffer(View, void* region, std::size_t n, std::string name)
        : raw_(region), n_(n), name_(std::move(name)), owns_(false) {}
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        std::swap(raw_, o.raw_);
        std::swap(n_, o.n_);
        std::swap(name_, o.name_);
        std::swap(owns_, o.owns_);
        return *this;
    }
    ~DeviceBuffer() {
        if (owns_) pool_free(raw_);
    }
    T* get() { return reinterpret_cast<T*>(static_cast<unsigned char*>(raw_) + kGuardBytes); }
    const T* get() const { return reinterpret_cast<const T*>(static_cast<const unsigned char*>(raw_) + kGuardBytes); }
    std::size_t size() const { return n_; }
    std::size_t bytes() const { return n_ * sizeof(T); }
    const std::string& name() const { return name_; }
    void poison() {
        if (n_) CUDA_CHECK(cudaMemsetAsync(get(), kPoisonByte, bytes(), cudaStreamPerThread));
    }
    // Through the pinned stage: asynchronous, and the caller may free `h` at once.
    void upload(const std::vector<T>& h) {
        if (h.size() != n_) throw std::logic_error(name_ + ": upload size mismatch");
        if (!n_) return;
        unsigned char* stage = PinnedStage::take(bytes());
        std::memcpy(stage, h.data(), bytes());
        CUDA_CHECK(cudaMemcpyAsync(get(), stage, bytes(), cudaMemcpyHostToDevice, cudaStreamPerThread));
    }
    // Synchronous (pageable destination).
    std::vector<T> download() const {
        std::vector<T> h(n_);
        if (n_) {
            CUDA_CHECK(cudaMemcpyAsync(h.data(), get(), bytes(), cudaMemcpyDeviceToHost, cudaStreamPerThread));
            sync_thread_stream();
        }
        return h;
    }
    GuardRegion guards() const { return {raw_, bytes(), &name_}; }
    // Throws GuardBandError when either band changed.
    void check_guards() const { check_guard_bands({guards()}); }

private:
    void* raw_ = nullptr;
    std::size_t n_ = 0;
    std::string name_;
    bool owns_ = true;
};

// Many guarded buffers in one pool block, set up by one upload: a run's
// inputs, outputs and bands cost one allocation and one copy instead of a
// dozen of each. Reserve every region, fill the pinned host image (bands
// are pre-filled; payloads are the caller's: inputs, or poison for
// outputs), upload, then take views.
class DeviceArena {
public:
    DeviceArena() = default;
    DeviceArena(const DeviceArena&) = delete;
    DeviceArena& operator=(const DeviceArena&) = delete;
    ~DeviceArena() { pool_free(raw_); }
    // Returns the region's offset (its front band).
    template <class T>
    std::size_t reserve(std::size_t n) {
        const std::size_t at = total_;
        payloads_.push_back({at, n * sizeof(T)});
        total_ += guarded_region_bytes(n * sizeof(T));
        return at;
    }
    // The host image (PinnedStage) with every band written; each payload is
    // the caller's to fill (whole-image fills cost as much as the upload for
    // long KV caches).
    unsigned char* begin_image();
    template <class T>
    T* image_payload(std::size_t region) {
        return reinterpret_cast<T*>(image_ + region + kGuardBytes);
    }
    void poison_image(std::size_t region, std::size_t bytes) {
        std::memset(image_ + region + kGuardBytes, kPoisonByte, bytes);
    }
    // One allocation, one asynchronous copy of the image.
    void upload();
    // The whole arena on the device (after upload), for one copy back of
    // every region.
    const unsigned char* device_bytes() const { return static_cast<const unsigned char*>(raw_); }
    std::size_t bytes() const { return total_; }
    template <class T>
    DeviceBuffer<T> view(std::size_t region, std::size_t n, std::string name) {
        return DeviceBuffer<T>(typename DeviceBuffer<T>::View{}, static_cast<unsigned char*>(raw_) + region, n,
                               std::move(name));
    }

private:
    struct Payload {
        std::size_t region, bytes;
    };
    std::vector<Payload> payloads_;
    std::size_t total_ = 0;
    unsigned char* image_ = nullptr;
    void* raw_ = nullptr;
};

} // namespace attncheck
