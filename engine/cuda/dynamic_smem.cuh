// Opting a kernel into more than 48 KiB of dynamic shared memory.
//
// The attribute (cudaFuncAttributeMaxDynamicSharedMemorySize) is per kernel
// and per device, shared by every host thread. Setting it to what one launch
// needs races with another thread launching the same kernel with more: that
// launch fails with cudaErrorInvalidValue (seen on the H200 with 32 worker
// threads). So it is raised once, per thread and device, to the most the
// device allows beside the kernel's static shared memory, which every launch
// fits under; occupancy is decided by each launch's own size, not by this
// ceiling.
#pragma once

#include <cuda_runtime.h>

#include <set>
#include <utility>

#include "engine/cuda/check.cuh"

namespace attncheck {

template <class Kernel>
void allow_max_dynamic_smem(Kernel kernel) {
    thread_local std::set<std::pair<const void*, int>> done; // (kernel, device)
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (!done.insert({reinterpret_cast<const void*>(kernel), dev}).second) return;
    int optin = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    cudaFuncAttributes attr{};
    CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    optin - static_cast<int>(attr.sharedSizeBytes)));
}

} // namespace attncheck
