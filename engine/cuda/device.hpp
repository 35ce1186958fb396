// Plain C++ view of the CUDA device: whether one is usable, and the GPU
// smoke checks (device-side dtype conversion against the host's rounding).
// Callable from code compiled without nvcc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attncheck {

// True when a CUDA device can be used; otherwise `why` says why not (no
// driver, no device, ...), for GTEST_SKIP messages and `attncheck` output.
bool cuda_device_available(std::string* why);
std::string cuda_device_name();
// How many CUDA devices are visible (0 when none or no driver).
int cuda_device_count();
// Makes `device` the calling thread's current device (worker threads of a
// multi-GPU run each pick theirs); throws CudaError when it cannot.
void cuda_select_device(int device);
// How a thread waiting for `device` (cudaStreamSynchronize and the like)
// uses its core: ATTNCHECK_CUDA_SYNC=spin|yield|blocking|auto (unset: the
// runtime's auto, which spins while the process has fewer contexts than
// cores). Spinning waiters take the cores that other worker threads need
// for their host work; bench/results/ has the measured effect. Throws
// std::invalid_argument for another value, CudaError when the runtime
// refuses. Returns the policy applied ("auto" when unset).
std::string cuda_apply_sync_policy(int device);

// CUDA and cuBLAS calls this thread has made so far (engine/cuda/check.cuh).
long long cuda_calls_on_thread();

// Waits for the calling thread's stream (per-thread default stream), the
// wait charged to device_wait. Inside run_interleaved
// (engine/fiber/interleave.hpp) the job yields instead, and the scheduler's
// one release_thread_stream() serves every job that waits with it.
void sync_thread_stream();
// The synchronization itself: run_interleaved's release for CUDA jobs.
void release_thread_stream();

// Round floats to fp16 / bf16 on the device with __float2half_rn /
// __float2bfloat16_rn and return the bits.
std::vector<std::uint16_t> device_round_f16(const std::vector<float>& x);
std::vector<std::uint16_t> device_round_bf16(const std::vector<float>& x);

} // namespace attncheck
