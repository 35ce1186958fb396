#include "engine/cuda/cublas_handle.hpp"

#include <map>

#include "engine/cuda/check.cuh"

namespace attncheck {

cublasHandle_t thread_cublas_handle() {
    thread_local std::map<int, cublasHandle_t> handles; // by device
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    cublasHandle_t& h = handles[dev];
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        CUBLAS_CHECK(cublasSetStream(h, cudaStreamPerThread));
        CUBLAS_CHECK(cublasSetMathMode(
            h, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
        CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    }
    return h;
}

} // namespace attncheck
