// flash_prefill on CUDA, host side: picks the kernel build for the case
// (dtype x head_dim x mutant), sizes its dynamic shared memory, launches one
// block per (64 query rows, q head, sequence), and for a probe sizes the
// per-tile slots from the tiles the probed row's block visits (the kernel's
// own rule, block_tile_range). The kernel, its algorithm and its limits are
// in flash_prefill_kernel.cuh; the CPU twin is flash_prefill_cpu.cpp.
//
// Builds: Mutant::none for float, __half, __nv_bfloat16 x head_dim 64, 80,
// 96, 128, 256; mutants only for __half at head_dim 64 (cuda_mutant_built).
// Any other head_dim, or a mutant outside those builds, is an UnsupportedCase.
// Shared memory above 48 KB is opted into with cudaFuncSetAttribute.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <optional>
#include <string>
#include <type_traits>

#include "engine/cuda/check.cuh"
#include "engine/cuda/dynamic_smem.cuh"
#include "engine/cuda/kernel_clock.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/device_problem.cuh"
#include "kernels/flash_prefill/flash_prefill.hpp"
#include "kernels/flash_prefill/flash_prefill_kernel.cuh"

namespace attncheck::kernels {

namespace {

using flash::FlashParams;
using flash::kBlockM;
using flash::kThreads;

template <class T, int D, Mutant M>
void launch(DeviceProblem<T>& dp, const DeviceProbeView& pv) {
    constexpr int smem = flash::smem_bytes<T, D>();
    void (*kernel)(FlashParams<T>, DeviceProbeView);
    if constexpr (flash::kIsMma<T>)
        kernel = flash::flash_prefill_mma_kernel<T, D, M>;
    else
        kernel = flash::flash_prefill_f32_kernel<D, M>;
    if (smem > 48 * 1024) allow_max_dynamic_smem(kernel);
    const int q_blocks = (dp.max_q_len + kBlockM - 1) / kBlockM;
    if (q_blocks == 0 || dp.shape.batch == 0) return;
    FlashParams<T> params{dp.q.get(),       dp.k.get(),        dp.v.get(),      dp.o.get(),       dp.lse.get(),
                          dp.q_start.get(), dp.kv_start.get(), dp.q_lens.get(), dp.kv_lens.get(), dp.shape};
    const dim3 grid(static_cast<unsigned>(q_blocks), static_cast<unsigned>(dp.shape.n_q_heads),
                    static_cast<unsigned>(dp.shape.batch));
    timed_kernels([&] {
        kernel<<<grid, kThreads, smem>>>(params, pv);
        CUDA_CHECK_LAUNCH();
    });
}

// Runs one (T, D, M) build, with the probe when asked.
template <class T, int D, Mutant M>
Observation run_build(const AttentionProblem& p, DeviceProblem<T>& dp, const std::optional<ProbeRequest>& probe) {
    if (!probe) {
        launch<T, D, M>(dp, DeviceProbeView{});
        return dp.download();
    }
    // Tiles the probed row's block visits (same rule as the kernel).
    const int q_len = p.q_lens[probe->seq], kv_len = p.kv_lens[probe->seq];
    const int i0 = probe->token / kBlockM * kBlockM;
    int t_lo, t_hi;
    flash::block_tile_range<M>(dp.shape, q_len, kv_len, i0, std::min(q_len, i0 + kBlockM), flash::block_n(D), t_lo,
                               t_hi);
    const int tiles = t_hi - t_lo;
    DeviceProbe dprobe(p, *probe, tiles, 0);
    launch<T, D, M>(dp, dprobe.view());
    Observation obs = dp.download();
    obs.probe = dprobe.download(tiles, 0);
    return obs;
}

template <class T, int D>
Observation run_dim(const AttentionProblem& p, DeviceProblem<T>& dp, Mutant m,
                    const std::optional<ProbeRequest>& probe) {
    // Mutant kernels exist for fp16 at head_dim 64 only (flash::cuda_mutant_built).
    constexpr bool mutants_built = std::is_same_v<T, __half> && D == 64;
    return dispatch_mutant<&cuda_builds<Family::flash_prefill, mutants_built>>(
        m, "flash_prefill_cuda", [&](auto mc) { return run_build<T, D, decltype(mc)::value>(p, dp, probe); });
}

template <class T>
Observation run_typed(const AttentionProblem& p, DeviceProblem<T>& dp, Mutant m,
                      const std::optional<ProbeRequest>& probe) {
    switch (p.head_dim) {
        case 64:
            return run_dim<T, 64>(p, dp, m, probe);
        case 80:
            return run_dim<T, 80>(p, dp, m, probe);
        case 96:
            return run_dim<T, 96>(p, dp, m, probe);
        case 128:
            return run_dim<T, 128>(p, dp, m, probe);
        case 256:
            return run_dim<T, 256>(p, dp, m, probe);
        default:
            break;
    }
    throw UnsupportedCase("flash_prefill_cuda: head_dim " + std::to_string(p.head_dim) + " not supported");
}

} // namespace

Observation flash_prefill_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (!flash::head_dim_supported(p.head_dim))
        throw UnsupportedCase("flash_prefill_cuda: head_dim " + std::to_string(p.head_dim) +
                              " has no kernel (supported: 64, 80, 96, 128, 256)");
    if (m != Mutant::none && !flash::cuda_mutant_built(p.dtype, p.head_dim))
        throw UnsupportedCase("flash_prefill_cuda: mutant builds are fp16 only, head_dim 64");
    check_probe_request(p, probe, "flash_prefill_cuda");
    return with_device_problem(p, [&](auto& dp) { return run_typed(p, dp, m, probe); });
}

} // namespace attncheck::kernels
