// Error checking for every CUDA runtime and cuBLAS call, and for every kernel
// launch. A failure throws CudaError with the call, file and line; a sticky
// error (one that poisons the context) is marked so a campaign can restart
// the process rather than carry on with a dead context.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace attncheck {

struct CudaError : std::runtime_error {
    CudaError(const std::string& what, bool sticky_) : std::runtime_error(what), sticky(sticky_) {}
    bool sticky;
};

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line);
// CUDA and cuBLAS calls checked on this thread (launches count twice: the
// launch and its cudaGetLastError). Every call takes the context's lock,
// which all worker threads share: `bench throughput` reports calls per case.
extern thread_local long long t_checked_cuda_calls;
[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line);

} // namespace attncheck

#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        ++::attncheck::t_checked_cuda_calls;                                                 \
        if (e_ != cudaSuccess) ::attncheck::throw_cuda_error(e_, #call, __FILE__, __LINE__); \
    } while (0)

#define CUBLAS_CHECK(call)                                                                               \
    do {                                                                                                 \
        cublasStatus_t s_ = (call);                                                                      \
        ++::attncheck::t_checked_cuda_calls;                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS) ::attncheck::throw_cublas_error(s_, #call, __FILE__, __LINE__); \
    } while (0)

// After every <<<...>>> launch: launch-configuration errors now, and (in
// debug or when ATTNCHECK_SYNC_LAUNCHES is set) execution errors too.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
