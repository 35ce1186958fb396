// What a target returns for one Case: O in Q's layout, LSE per (token, head),
// and optionally the stage trace of one probed row.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/case/problem.hpp"

namespace attncheck {

// Which row to trace: sequence, q head, query token within the sequence.
struct ProbeRequest {
    int seq = 0, head = 0, token = 0;
};

// Is r a row of p: one of its sequences, q heads, and a query token of that
// sequence?
inline bool probe_row_in_problem(const AttentionProblem& p, const ProbeRequest& r) {
    return r.seq >= 0 && r.seq < p.batch() && r.head >= 0 && r.head < p.n_q_heads && r.token >= 0 &&
           r.token < p.q_lens[r.seq];
}

// Every target's first step when asked for a probe: a row the problem does
// not have is the caller's error (std::invalid_argument, naming `who`), not
// something to clamp or ignore.
inline void check_probe_request(const AttentionProblem& p, const std::optional<ProbeRequest>& r, const char* who) {
    if (r && !probe_row_in_problem(p, *r))
        throw std::invalid_argument(std::string(who) + ": probe (seq " + std::to_string(r->seq) + ", head " +
                                    std::to_string(r->head) + ", token " + std::to_string(r->token) +
                                    ") outside the problem");
}

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
