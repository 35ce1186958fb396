// Device discovery, the CUDA error helpers, and the dtype smoke kernels. The
// conversion kernels are one thread per element, grid-stride; they exist to
// prove that host-side rounding (engine/case/dtype.hpp) equals the hardware's.
#include "engine/cuda/check.cuh"
#include "engine/cuda/device.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>

namespace attncheck {

thread_local long long t_checked_cuda_calls = 0;

long long cuda_calls_on_thread() { return t_checked_cuda_calls; }

void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line) {
    // Errors after which the context is unusable (the process must restart).
    const bool sticky = e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure ||
                        e == cudaErrorMisalignedAddress || e == cudaErrorIllegalInstruction ||
                        e == cudaErrorHardwareStackError || e == cudaErrorAssert;
    throw CudaError(
        fmt::format("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(e), cudaGetErrorString(e), call, file, line),
        sticky);
}

void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line) {
    throw CudaError(fmt::format("cuBLAS error {} ({}) in {} at {}:{}", cublasGetStatusName(s), cublasGetStatusString(s),
                                call, file, line),
                    false);
}

bool cuda_device_available(std::string* why) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            *why = fmt::format("no usable CUDA device: cudaGetDeviceCount returned {} ({})", cudaGetErrorName(e),
                               cudaGetErrorString(e));
        cudaGetLastError(); // clear the non-sticky error
        return false;
    }
    if (n == 0) {
        if (why) *why = "no CUDA device visible";
        return false;
    }
    return true;
}

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the non-sticky error
        return 0;
    }
    return n;
}

void cuda_select_device(int device) { CUDA_CHECK(cudaSetDevice(device)); }

std::string cuda_apply_sync_policy(int device) {
    const char* env = std::getenv("ATTNCHECK_CUDA_SYNC");
    const std::string policy = env && *env ? env : "auto";
    unsigned flag = cudaDeviceScheduleAuto;
    if (policy == "spin")
        flag = cudaDeviceScheduleSpin;
    else if (policy == "yield")
        flag = cudaDeviceScheduleYield;
    else if (policy == "blocking")
        flag = cudaDeviceScheduleBlockingSync;
    else if (policy != "auto")
        throw std::invalid_argument(
            fmt::format("ATTNCHECK_CUDA_SYNC={}: expected spin, yield, blocking or auto", policy));
    if (flag == cudaDeviceScheduleAuto) return policy;
    CUDA_CHECK(cudaSetDevice(device));
    // On an initialized device this overwrites the primary context's flags
    // (CUDA >= 12), so it applies even after earlier calls made the context.
    CUDA_CHECK(cudaSetDeviceFlags(flag));
    return policy;
}

std::string cuda_device_name() {
    cudaDeviceProp p{};
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    return fmt::format("{} (sm_{}{}, {} SMs)", p.name, p.major, p.minor, p.multiProcessorCount);
}

namespace {

__global__ void round_f16_kernel(const float* in, std::uint16_t* out, long long n) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        out[i] = __half_as_ushort(__float2half_rn(in[i]));
}

__global__ void round_bf16_kernel(const float* in, std::uint16_t* out, long long n) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<long long>(gridDim.x) * blockDim.x)
        out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
}

template <class Kernel>
std::vector<std::uint16_t> run_round(Kernel kernel, const std::vector<float>& x) {
    const long long n = static_cast<long long>(x.size());
    std::vector<std::uint16_t> out(x.size(), 0xffff);
    float* d_in = nullptr;
    std::uint16_t* d_out = nullptr;
    CUDA_CHECK(cudaMalloc(&d_in, x.size() * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_out, x.size() * sizeof(std::uint16_t)));
    CUDA_CHECK(cudaMemcpy(d_in, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(d_out, 0xff, x.size() * sizeof(std::uint16_t))); // poison: 0xffff is a NaN
    kernel<<<256, 256>>>(d_in, d_out, n);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(out.data(), d_out, x.size() * sizeof(std::uint16_t), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d_in));
    CUDA_CHECK(cudaFree(d_out));
    return out;
}

} // namespace

std::vector<std::uint16_t> device_round_f16(const std::vector<float>& x) { return run_round(round_f16_kernel, x); }
std::vector<std::uint16_t> device_round_bf16(const std::vector<float>& x) { return run_round(round_bf16_kernel, x); }

} // namespace attncheck
