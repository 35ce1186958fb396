// Device-side conversions between the storage types of a kernel (float,
// __half, __nv_bfloat16) and the fp32 every family computes in: loads widen
// exactly, stores round to nearest even, as the CPU twins' round_to does.
// One definition for every family, so no kernel can round its output
// differently from the others. (The host-side conversions of the inputs are
// in device_problem.cuh.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace attncheck::kernels {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
    return x;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
    return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Two consecutive elements as floats. The caller guarantees an even element
// offset (head_dim even, so every row starts on a pair; device buffers are at
// least 256-byte aligned), hence 4- or 8-byte alignment.
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load_pair(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}
__device__ __forceinline__ float2 load_pair(const __nv_bfloat16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

} // namespace attncheck::kernels
