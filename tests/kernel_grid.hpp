// The grid every kernel family must pass against the oracle: GQA 14/2, 28/4,
// 3/1, MQA 8/1 and MHA 4/4; head_dim 1, 64, 80, 96, 128, 256; lengths at tile
// size -1, 0, +1 (16, 32, 64, 128), an empty cache, q_len < kv_len and
// q_len > kv_len, ragged batches with empty sequences; every dtype; causal,
// windowed and full attention; split counts including more splits than keys;
// paged KV caches with pages of 1 to 128 keys (a quarter of the cases again).
// Cases a family does not support are skipped by its unsupported() reason.
#pragma once

#include <vector>

#include "engine/case/case.hpp"

namespace attncheck::grid {

struct LenPattern {
    std::vector<int> q, kv;
};

inline std::vector<LenPattern> grid_lengths() {
    return {
        // decode: one query against caches at tile boundaries, empty, ragged
        {{1}, {0}},
        {{1}, {1}},
        {{1}, {15}},
        {{1}, {16}},
        {{1}, {17}},
        {{1}, {31}},
        {{1}, {32}},
        {{1}, {33}},
        {{1}, {63}},
        {{1}, {64}},
        {{1}, {65}},
        {{1}, {129}},
        {{1, 1, 1}, {0, 17, 65}},
        {{1, 0, 1}, {64, 3, 1}},
        // prefill: square at tile boundaries, chunked (q < kv), q > kv, empty
        {{15}, {15}},
        {{16}, {16}},
        {{17}, {17}},
        {{63}, {63}},
        {{64}, {64}},
        {{65}, {65}},
        {{17}, {65}},
        {{3}, {129}},
        {{65}, {17}},
        {{5}, {0}},
        {{0}, {5}},
        {{2, 33, 0}, {40, 33, 7}},
    };
}

inline std::vector<Case> kernel_grid_cases() {
    const int heads[][2] = {{14, 2}, {28, 4}, {3, 1}, {8, 1}, {4, 4}};
    const int dims[] = {1, 64, 80, 96, 128, 256};
    const DType dtypes[] = {DType::f16, DType::bf16, DType::f32};
    const auto lens = grid_lengths();
    std::vector<Case> out;
    // Index-based coverage of heads x dims x lengths without the full product
    // (lens.size() is coprime with 5 * 6, so every combination of a length
    // with each head config and each head dim appears).
    const int n = static_cast<int>(lens.size()) * 12;
    for (int i = 0; i < n; ++i) {
        Case c;
        c.n_q_heads = heads[i % 5][0];
        c.n_kv_heads = heads[i % 5][1];
        c.head_dim = dims[(i / 5) % 6];
        const LenPattern& lp = lens[static_cast<size_t>(i) % lens.size()];
        c.q_lens = lp.q;
        c.kv_lens = lp.kv;
        c.dtype = dtypes[(i / 7) % 3];
        c.causal = (i % 3) != 0;
        if (c.causal && i % 4 == 1) c.window = 1 + (i / 4) % 40;
        c.num_splits = 1 + (i / 2) % 9; // up to 9 splits, often more than keys
        c.data.seed = 1000 + static_cast<std::uint64_t>(i);
        c.data.dist = (i % 11 == 0) ? Dist::uniform : Dist::normal;
        // Mostly O(1) logits; every fourth case has logits of order 10-100.
        if (i % 4 == 3) c.data.q_scale = c.data.k_scale = 3.0;
        // Keep the heaviest combinations affordable on 2 CPU cores.
        long long work = 0;
        for (size_t b = 0; b < c.q_lens.size(); ++b)
            work += static_cast<long long>(c.q_lens[b]) * c.kv_lens[b] * c.n_q_heads * c.head_dim;
        if (work > 4000000) {
            // Same group size, one kv head.
            c.n_q_heads = c.n_q_heads / c.n_kv_heads;
            c.n_kv_heads = 1;
        }
        out.push_back(c);
        // Every fourth case again with a paged KV cache, for the families
        // that page (the others refuse it): pages smaller than, equal to and
        // larger than the tiles, boundaries at tile edges and inside tiles.
        if (i % 4 == 0) {
            const int pages[] = {16, 1, 5, 32, 64, 7, 128};
            c.page_size = pages[(i / 4) % 7];
            c.page_seed = 77 + static_cast<std::uint64_t>(i);
            out.push_back(c);
        }
    }
    return out;
}

} // namespace attncheck::grid
