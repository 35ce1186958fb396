// A materialized Case: the exact input values every target and the oracle
// read, in the packed varlen layout described in case.hpp, plus the index
// arithmetic that layout implies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/case/case.hpp"

namespace attncheck {

struct AttentionProblem {
    int n_q_heads = 1, n_kv_heads = 1, head_dim = 1;
    std::vector<int> q_lens, kv_lens;
    std::vector<long long> q_start, kv_start; // first token of each sequence
    bool causal = false;
    int window = 0;
    int num_splits = 1;
    int page_size = 0; // paged KV cache (0: contiguous); q, k, v below are logical either way
    std::uint64_t page_seed = 0;
    double scale = 1.0;
    DType dtype = DType::f32;
    // Values exactly representable in dtype, held as float.
    std::vector<float> q, k, v;

    int batch() const { return static_cast<int>(q_lens.size()); }
    int group() const { return n_q_heads / n_kv_heads; }
    long long total_q() const { return q_start.empty() ? 0 : q_start.back() + q_lens.back(); }
    long long total_kv() const { return kv_start.empty() ? 0 : kv_start.back() + kv_lens.back(); }
    // Sizes of q, and of k and v.
    size_t q_elems() const { return static_cast<size_t>(total_q()) * n_q_heads * head_dim; }
    size_t kv_elems() const { return static_cast<size_t>(total_kv()) * n_kv_heads * head_dim; }
    // Offsets of the first element of a row.
    long long q_index(int seq, int tok, int head) const {
        return ((q_start[seq] + tok) * n_q_heads + head) * static_cast<long long>(head_dim);
    }
    long long kv_index(int seq, int tok, int kv_head) const {
        return ((kv_start[seq] + tok) * n_kv_heads + kv_head) * static_cast<long long>(head_dim);
    }
    // Output O shares Q's layout; LSE is [total_q][n_q_heads].
    long long o_index(int seq, int tok, int head) const { return q_index(seq, tok, head); }
    long long lse_index(int seq, int tok, int head) const { return (q_start[seq] + tok) * n_q_heads + head; }
};

// Deterministic: the same Case gives the same bits everywhere. Validates first.
AttentionProblem materialize(const Case& c);

// materialize(c) without the data: every field but q, k and v, which are
// left empty. Does not validate.
AttentionProblem problem_shape(const Case& c);

// The Case a problem's shape and features came from, without its data (so
// targets can answer unsupported() for problems built directly, e.g. by the
// model). The scale is always explicit.
Case shape_of(const AttentionProblem& p);

} // namespace attncheck
