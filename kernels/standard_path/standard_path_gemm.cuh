// The cuBLAS half of the standard_path family (kernels/standard_path/
// standard_path.cu): the GEMM calls and the rule that keeps them batch
// invariant (see that file's opening comment): every GEMM addresses a
// sequence's Q, K, V and O through a 256-byte-aligned base, so the kernel
// cuBLAS picks and the batched-or-per-head choice depend on the sequence's
// shape only, never on where it sits in the batch.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/cuda/check.cuh"
#include "engine/cuda/device_buffer.cuh"

namespace attncheck::kernels::standard_path_detail {

// ---- cuBLAS

template <class T>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
    return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_type<__half>() {
    return CUDA_R_16F;
}
template <>
constexpr cudaDataType_t cuda_type<__nv_bfloat16>() {
    return CUDA_R_16BF;
}

// fp32 inputs: pedantic fp32 (never TF32 or BF16x9 emulation, whatever the
// environment says); fp16/bf16: fp32 accumulation on tensor cores.
template <class T>
constexpr cublasComputeType_t compute_32f() {
    return std::is_same_v<T, float> ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
}

struct GemmCall {
    cublasOperation_t ta, tb;
    int m, n, k;
    const void *alpha, *beta;
    cudaDataType_t at, bt, ct;
    int lda, ldb, ldc;
    cublasComputeType_t compute;
};

// C_i = op(A_i) op(B_i) for every i: one cublasGemmBatchedEx when every
// pointer is 16-byte aligned, else one cublasGemmEx per i. The two may round
// differently, so callers pass pointers whose alignment is a function of
// the sequence's shape only (AlignedBlocks): then so is this choice.
inline void gemm_batch(cublasHandle_t handle, const GemmCall& g, const std::vector<const void*>& a,
                       const std::vector<const void*>& b, const std::vector<void*>& c, DeviceBuffer<void*>& ptrs) {
    const int nb = static_cast<int>(c.size());
    if (nb == 0) return;
    bool aligned = true;
    for (int x = 0; x < nb; ++x)
        aligned = aligned && reinterpret_cast<std::uintptr_t>(a[x]) % 16 == 0 &&
                  reinterpret_cast<std::uintptr_t>(b[x]) % 16 == 0 && reinterpret_cast<std::uintptr_t>(c[x]) % 16 == 0;
    const std::size_t slot = (static_cast<std::size_t>(nb) + 1) / 2 * 2; // each array 16-byte aligned
    if (aligned && 3 * slot <= ptrs.size()) {
        std::vector<void*> host(ptrs.size(), nullptr);
        for (int x = 0; x < nb; ++x) {
            host[x] = const_cast<void*>(a[x]);
            host[slot + x] = const_cast<void*>(b[x]);
            host[2 * slot + x] = c[x];
        }
        ptrs.upload(host); // through the pinned stage, ordered after earlier work on this thread's stream
        void** d = ptrs.get();
        CUBLAS_CHECK(cublasGemmBatchedEx(handle, g.ta, g.tb, g.m, g.n, g.k, g.alpha, d, g.at, g.lda, d + slot, g.bt,
                                         g.ldb, g.beta, d + 2 * slot, g.ct, g.ldc, nb, g.compute, CUBLAS_GEMM_DEFAULT));
    } else {
        for (int x = 0; x < nb; ++x)
            CUBLAS_CHECK(cublasGemmEx(handle, g.ta, g.tb, g.m, g.n, g.k, g.alpha, a[x], g.at, g.lda, b[x], g.bt, g.ldb,
                                      g.beta, c[x], g.ct, g.ldc, g.compute, CUBLAS_GEMM_DEFAULT));
    }
}

// ---- per-sequence operands at an aligned base (batch invariance, see the
// opening comment)

inline constexpr std::uintptr_t kOperandAlign = 256;
static_assert(kGuardBytes % kOperandAlign == 0, "a DeviceBuffer's payload must keep cudaMalloc's 256-byte alignment");

inline bool operand_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kOperandAlign == 0; }

// One tensor's blocks (a sequence's contiguous row range of Q, K, V or O)
// as the GEMMs address them: in place when the block's base is aligned,
// else through scratch at an aligned base. The scratch is sized for the
// largest misaligned block of the batch and allocated only when there is
// one, so a batch whose blocks are all aligned allocates and copies nothing.
template <class T>
class AlignedBlocks {
public:
    explicit AlignedBlocks(const char* name) : name_(name) {}
    // First pass over the batch: record a block the GEMMs will address.
    void need(const T* block, long long n) {
        if (!operand_aligned(block)) n_ = std::max(n_, n);
    }
    void allocate() {
        if (n_ == 0) return;
        buf_ = DeviceBuffer<T>(static_cast<std::size_t>(n_), name_);
        if (!operand_aligned(buf_.get())) throw std::logic_error(std::string(name_) + ": scratch not 256-byte aligned");
        buf_.poison();
    }
    // An input block: itself, or its copy at the scratch base.
    const T* in(const T* block, long long n) {
        if (operand_aligned(block)) return block;
        CUDA_CHECK(cudaMemcpyAsync(buf_.get(), block, bytes(n), cudaMemcpyDeviceToDevice, cudaStreamPerThread));
        return buf_.get();
    }
    // The output block the GEMMs write: itself, or scratch poisoned again
    // (nothing of an earlier sequence can stand in for a missing write);
    // finish() copies the scratch back.
    T* out(T* block, long long n) {
        if (operand_aligned(block)) return block;
        CUDA_CHECK(cudaMemsetAsync(buf_.get(), kPoisonByte, bytes(n), cudaStreamPerThread));
        return buf_.get();
    }
    void finish(T* block, long long n) {
        if (operand_aligned(block)) return;
        CUDA_CHECK(cudaMemcpyAsync(block, buf_.get(), bytes(n), cudaMemcpyDeviceToDevice, cudaStreamPerThread));
    }
    // None when no scratch was needed.
    GuardRegion guards() const { return buf_.guards(); }

private:
    std::size_t bytes(long long n) const {
        if (n > n_) throw std::logic_error(std::string(name_) + ": block larger than its scratch");
        return static_cast<std::size_t>(n) * sizeof(T);
    }
    const char* name_;
    long long n_ = 0;
    DeviceBuffer<T> buf_;
};

} // namespace attncheck::kernels::standard_path_detail
