// Where the flash_prefill kernel's data lives: its parameter block (the
// packed varlen tensors in global memory), the shared-memory tiles of Q, K,
// V (and, on the fp32 path, P) with their strides and total size, and the
// cp.async loads that fill a tile. Layout only; the kernel that walks the
// tiles is flash_prefill_kernel.cuh.
#pragma once

#include <type_traits>

#include "kernels/common/attention_common.hpp"
#include "kernels/common/mma_m16n8k16.cuh"
#include "kernels/flash_prefill/flash_prefill.hpp"

namespace attncheck::kernels::flash {

static_assert(kBlockM == kWarps * 16, "mma path: each warp owns one 16-row m-tile");
static_assert(kThreads == 128, "fp32 path: a 16 x 8 thread grid");

template <class T>
constexpr bool kIsMma = !std::is_same_v<T, float>;

// Shared-memory row stride (elements) of the Q, K, V tiles: D plus 16 bytes,
// which keeps 16-byte alignment for cp.async and makes consecutive rows start
// 4 banks apart (ldmatrix phases and the fp32 float4 loads are conflict-free).
template <class T, int D>
constexpr int row_stride() {
    return D + 16 / static_cast<int>(sizeof(T));
}
// fp32 path: row stride of the P slice, BN + 8 floats (rows 8 banks apart).
template <int BN>
constexpr int p_stride() {
    return BN + 8;
}

template <class T, int D>
constexpr int smem_bytes() {
    constexpr int BN = block_n(D);
    constexpr int S = row_stride<T, D>();
    int bytes = (kBlockM + 2 * BN) * S * static_cast<int>(sizeof(T));
    if (!kIsMma<T>) bytes += kBlockM * p_stride<BN>() * 4;
    return bytes;
}

template <class T>
struct FlashParams {
    const T* q;
    const T* k;
    const T* v;
    T* o;
    float* lse;
    const int* q_start;
    const int* kv_start;
    const int* q_lens;
    const int* kv_lens;
    AttnShape shape;
};

// ROWS x D tile of T into shared memory (row stride S elements) from global
// rows g + r * gstride, r < rows_valid; rows past rows_valid are zero-filled
// and never read. Consecutive threads copy consecutive 16-byte chunks.
template <class T, int D, int ROWS, int S>
__device__ __forceinline__ void load_tile(T* s, const T* g, long long gstride, int rows_valid) {
    constexpr int kEpc = 16 / static_cast<int>(sizeof(T)); // elements per 16-byte chunk
    constexpr int kCpr = D / kEpc;                         // chunks per row
    static_assert(D % kEpc == 0, "a row must be a whole number of 16-byte chunks");
    for (int idx = threadIdx.x; idx < ROWS * kCpr; idx += kThreads) {
        const int r = idx / kCpr;
        const int c = (idx % kCpr) * kEpc;
        const bool valid = r < rows_valid;
        cp_async_16(s + r * S + c, valid ? g + r * gstride + c : g, valid ? 16 : 0);
    }
}

} // namespace attncheck::kernels::flash
