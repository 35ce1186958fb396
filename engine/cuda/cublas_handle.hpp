// The process's one cuBLAS handle, shared by the standard attention path and
// the model. Created on first use and never destroyed: engines come and go
// by the hundred in the session properties, and a cublasDestroy from a
// static destructor can run after the CUDA runtime has shut down.
//
// Math mode: default (no TF32), and split-K reductions in the compute type,
// never in an fp16/bf16 output type, so fp32 accumulation means fp32
// throughout. Pointer mode host. Callers that may run concurrently hold
// cublas_mutex() around their calls (the handle's stream is shared).
#pragma once

#include <cublas_v2.h>

#include <mutex>

namespace attncheck {

cublasHandle_t shared_cublas_handle();
std::mutex& cublas_mutex();

} // namespace attncheck
