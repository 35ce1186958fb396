#include "engine/cuda/cublas_handle.hpp"

#include "engine/cuda/check.cuh"

namespace attncheck {

cublasHandle_t shared_cublas_handle() {
    static cublasHandle_t handle = [] {
        cublasHandle_t h = nullptr;
        CUBLAS_CHECK(cublasCreate(&h));
        CUBLAS_CHECK(cublasSetMathMode(
            h, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
        CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
        return h;
    }();
    return handle;
}

std::mutex& cublas_mutex() {
    static std::mutex m;
    return m;
}

} // namespace attncheck
