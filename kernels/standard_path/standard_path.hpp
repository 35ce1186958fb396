// Pieces of the standard_path family shared by its CUDA version
// (kernels/standard_path/standard_path.cu) and its CPU twin (kernels/standard_path/standard_path_cpu.cpp):
// the softmax block size (the CPU twin reproduces the CUDA row-sum reduction
// tree, so it needs the same thread count), the chunk plan that bounds the
// score scratch, and the reasons a case is rejected. Plain C++17: nvcc
// compiles this header too.
#pragma once

#include <cmath>
#include <string>

#include "engine/case/dtype.hpp"
#include "engine/targets/mutant.hpp"
#include "engine/targets/target.hpp"
#include "kernels/families.hpp"

namespace attncheck::kernels::standard_path_detail {

// Threads per softmax block (one block per (query row, q head)); a multiple
// of the warp size. The CPU twin sums a row in the order these threads do.
inline constexpr int kSoftmaxThreads = 128;
inline constexpr int kWarpSize = 32;
inline constexpr int kSoftmaxWarps = kSoftmaxThreads / kWarpSize;

// The largest head_dim the family accepts (the contract's range; nothing in
// the GEMMs needs it, but the campaign only generates up to 256).
inline constexpr int kMaxHeadDim = 256;

// At most this many score elements (fp32 S, plus P in T) are held at once:
// a sequence whose n_q_heads * q_len * kv_len exceeds it is processed in
// chunks of query rows (and, for very long rows, of heads). Rows are
// independent, so chunking does not change a single rounding.
// 2^26 elements = 256 MiB of fp32 S.
#ifndef ATTNCHECK_STD_SCORE_BUDGET
#define ATTNCHECK_STD_SCORE_BUDGET (1LL << 26)
#endif
inline constexpr long long kScoreBudget = ATTNCHECK_STD_SCORE_BUDGET;

// Each head's [rows][kv_len] score block starts on a multiple of 16 elements
// (64 bytes of S, 32 of fp16 P): the GEMM pointers into S and P are then
// 16-byte aligned whatever kv_len is, which cublasGemmBatchedEx wants.
inline constexpr long long kHeadAlign = 16;

inline long long head_stride(int rows, int kv_len) {
    const long long n = static_cast<long long>(rows) * kv_len;
    return (n + kHeadAlign - 1) / kHeadAlign * kHeadAlign;
}

// How one sequence (q_len >= 1, kv_len >= 1) is cut: heads [h0, h0 + heads)
// x rows [r0, r0 + rows) per chunk.
struct SeqPlan {
    int heads = 1, rows = 1;
    long long stride = 0; // elements between two heads' blocks in S and P
    long long elems() const { return static_cast<long long>(heads) * stride; }
};

inline SeqPlan plan_sequence(int q_len, int kv_len, int n_heads) {
    SeqPlan pl;
    pl.heads = n_heads;
    pl.rows = q_len;
    pl.stride = head_stride(q_len, kv_len);
    if (pl.elems() <= kScoreBudget) return pl;
    // Fewer rows, all heads: rows * kv_len + (kHeadAlign - 1) <= budget / heads.
    const long long per_head = kScoreBudget / n_heads - (kHeadAlign - 1);
    long long rows = per_head > 0 ? per_head / kv_len : 0;
    if (rows >= 1) {
        pl.rows = static_cast<int>(rows < q_len ? rows : q_len);
    } else { // one row per chunk and fewer heads
        pl.rows = 1;
        const long long h = kScoreBudget / head_stride(1, kv_len);
        pl.heads = static_cast<int>(h < 1 ? 1 : (h < n_heads ? h : n_heads));
    }
    pl.stride = head_stride(pl.rows, kv_len);
    return pl;
}

// Empty when the family computes such a case correctly; otherwise why not.
// `v_nonfinite`: V may hold NaN or inf (a special value or explicit values).
inline std::string unsupported_reason(int head_dim, DType dtype, bool causal, bool v_nonfinite, Backend b, Mutant m) {
    if (head_dim < 1 || head_dim > kMaxHeadDim)
        return "standard_path: head_dim " + std::to_string(head_dim) + " outside 1.." + std::to_string(kMaxHeadDim);
    if (std::string why = mutant_unsupported("standard_path", features_of(Family::standard_path), m, b); !why.empty())
        return why;
    if (b == Backend::cuda && m != Mutant::none && dtype != DType::f16)
        return "standard_path: mutant builds are fp16 only";
    // P.V is a dense GEMM over every key of the sequence: a masked key has
    // p = 0, and 0 * inf = NaN would reach rows that never see that key (as
    // in eager PyTorch). Without a causal mask every row sees every key, so
    // a non-finite V makes every row's input non-finite and nothing is lost.
    if (causal && v_nonfinite)
        return "standard_path: P.V is a dense GEMM over all keys, so a non-finite V value at a masked key "
               "gives 0 * inf = NaN in rows that do not see it";
    return {};
}

// Mutants that act inside the softmax kernel; the others (head selection for
// the GEMM pointers, the Q copy, the GEMM compute type) run the production
// softmax, so the CUDA build does not instantiate it for them.
constexpr Mutant softmax_mutant(Mutant m) {
    switch (m) {
        case Mutant::scale_missing:
        case Mutant::scale_twice:
        case Mutant::finite_mask_sentinel:
        case Mutant::mask_diagonal_dropped:
        case Mutant::mask_past_key:
        case Mutant::no_row_max:
        case Mutant::normalizer_drops_key:
        case Mutant::top_left_causal:
        case Mutant::fp16_accumulation:
            return m;
        default:
            return Mutant::none;
    }
}

} // namespace attncheck::kernels::standard_path_detail
