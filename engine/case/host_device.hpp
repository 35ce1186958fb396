// ATTNCHECK_HD marks a function that the GPU materializer
// (engine/case/materialize_device.cu) runs on the device as well as the host,
// so that both sides share one definition of the random streams and of the
// dtype rounding instead of two that could drift apart. Without nvcc it
// expands to nothing and the code is plain C++.
#pragma once

#if defined(__CUDACC__)
#define ATTNCHECK_HD __host__ __device__
#else
#define ATTNCHECK_HD
#endif
