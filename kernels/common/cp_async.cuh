// cp.async: 16-byte global -> shared copies that run behind the issuing
// thread (sm_80 and later), grouped and waited for by group. One PTX
// instruction per wrapper; shared by every kernel that pipelines its loads.
#pragma once

#include <cstdint>

namespace attncheck::kernels {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// src_bytes = 0 writes 16 zero bytes and reads nothing (the source address is
// then only a valid placeholder).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

} // namespace attncheck::kernels
