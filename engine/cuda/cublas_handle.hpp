// The calling thread's cuBLAS handle on the current device, shared by the
// standard attention path and the model. One per (thread, device): worker
// threads of a parallel run each drive their own stream, and a handle bound
// to one stream must not be shared (its workspace would be raced). Created on
// first use and never destroyed: engines come and go by the hundred in the
// session properties, and a cublasDestroy from a static or thread-exit
// destructor can run after the CUDA runtime has shut down.
//
// Stream: the thread's default stream (the project is built with
// CUDA_API_PER_THREAD_DEFAULT_STREAM, so that is cudaStreamPerThread).
// Math mode: default (no TF32), and split-K reductions in the compute type,
// never in an fp16/bf16 output type, so fp32 accumulation means fp32
// throughout. Pointer mode host.
#pragma once

#include <cublas_v2.h>

namespace attncheck {

cublasHandle_t thread_cublas_handle();

} // namespace attncheck
