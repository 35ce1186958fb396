// What a target returns for one Case: O in Q's layout, LSE per (token, head),
// and optionally the stage trace of one probed row.
#pragma once

#include <optional>
#include <vector>

namespace attncheck {

// Which row to trace: sequence, q head, query token within the sequence.
struct ProbeRequest {
    int seq = 0, head = 0, token = 0;
};

// Stage values of one row, as the target computed them. Vectors are indexed
// by key position within the sequence (0 .. kv_len-1); masked keys hold -inf
// in `masked` and 0 in `exps`/`p`. Tiled and split variants also fill the
// per-tile and per-split running statistics.
struct ProbeTrace {
    ProbeRequest where;
    std::vector<float> raw;    // q . k
    std::vector<float> scaled; // scale * q . k
    std::vector<float> masked; // scaled, -inf where hidden
    float row_max = 0;
    std::vector<float> exps; // exp(masked - row_max)
    float max_exp = 0;
    float row_sum = 0;
    std::vector<float> p;                    // probabilities
    std::vector<float> o;                    // output row
    std::vector<float> tile_max, tile_sum;   // online softmax, per tile
    std::vector<float> split_max, split_sum; // split-KV, per split
};

struct Observation {
    std::vector<float> o;   // [total_q][n_q_heads][head_dim]
    std::vector<float> lse; // [total_q][n_q_heads], natural log
    std::optional<ProbeTrace> probe;
};

} // namespace attncheck
