// The reference attention, templated on the number type (double,
// boost::multiprecision::cpp_bin_float_50, ...). It reads the exact rounded
// inputs of an AttentionProblem and computes every stage of every row the
// textbook way: scores, scale, mask, row max, exponentials, row sum, P, O,
// LSE. No tiling, no cleverness: its job is to be obviously right. A second,
// independently written reference (tiled_reference.hpp) checks it.
//
// Masking is written here as a per-key predicate, from the conventions in
// engine/case/case.hpp (bottom-right causal alignment, causal-only window); the
// tiled reference derives a key range instead, so a mistake in one shows up
// as a disagreement with the other.
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "engine/case/problem.hpp"

namespace attncheck {

// Key j of a sequence is visible to query i when this is true.
inline bool oracle_key_visible(const AttentionProblem& p, int seq, int i, int j) {
    if (!p.causal) return true;
    const long long pos = static_cast<long long>(p.kv_lens[seq]) - p.q_lens[seq] + i; // absolute position
    if (j > pos) return false;
    if (p.window > 0 && j <= pos - p.window) return false;
    return true;
}

template <class Real>
struct ReferenceRow {
    std::vector<Real> raw, scaled, masked, exps, p, o;
    std::vector<char> visible;
    int n_visible = 0;
    Real row_max{0}, row_sum{0}, lse{0};
};

template <class Real>
ReferenceRow<Real> reference_row(const AttentionProblem& pb, int seq, int head, int tok) {
    using std::exp;
    using std::log;
    const int d = pb.head_dim, n = pb.kv_lens[seq];
    const int kvh = head / pb.group();
    const Real scale = Real(pb.scale);
    const Real neg_inf = -std::numeric_limits<Real>::infinity();
    ReferenceRow<Real> r;
    r.raw.assign(n, Real(0));
    r.scaled.assign(n, Real(0));
    r.masked.assign(n, neg_inf);
    r.exps.assign(n, Real(0));
    r.p.assign(n, Real(0));
    r.o.assign(d, Real(0));
    r.visible.assign(n, 0);
    const float* q = &pb.q[pb.q_index(seq, tok, head)];
    for (int j = 0; j < n; ++j) {
        const float* k = &pb.k[pb.kv_index(seq, j, kvh)];
        Real acc(0);
        for (int c = 0; c < d; ++c) acc += Real(q[c]) * Real(k[c]);
        r.raw[j] = acc;
        r.scaled[j] = acc * scale;
        if (oracle_key_visible(pb, seq, tok, j)) {
            r.visible[j] = 1;
            ++r.n_visible;
            r.masked[j] = r.scaled[j];
        }
    }
    if (r.n_visible == 0) { // fully masked row: O = 0, LSE = -inf by convention
        r.row_max = neg_inf;
        r.lse = neg_inf;
        return r;
    }
    r.row_max = neg_inf;
    for (int j = 0; j < n; ++j)
        if (r.visible[j] && r.masked[j] > r.row_max) r.row_max = r.masked[j];
    r.row_sum = Real(0);
    for (int j = 0; j < n; ++j)
        if (r.visible[j]) {
            r.exps[j] = exp(r.masked[j] - r.row_max);
            r.row_sum += r.exps[j];
        }
    for (int j = 0; j < n; ++j) {
        if (!r.visible[j]) continue;
        r.p[j] = r.exps[j] / r.row_sum;
        const float* v = &pb.v[pb.kv_index(seq, j, kvh)];
        for (int c = 0; c < d; ++c) r.o[c] += r.p[j] * Real(v[c]);
    }
    r.lse = r.row_max + log(r.row_sum);
    return r;
}

// O and LSE for every row, converted to double at the end.
struct ReferenceOutput {
    std::vector<double> o;   // Q's layout
    std::vector<double> lse; // [total_q][n_q_heads]
};

template <class Real>
ReferenceOutput reference_attention(const AttentionProblem& pb) {
    ReferenceOutput out;
    out.o.assign(pb.q.size(), 0.0);
    out.lse.assign(static_cast<size_t>(pb.total_q()) * pb.n_q_heads, 0.0);
    for (int b = 0; b < pb.batch(); ++b)
        for (int t = 0; t < pb.q_lens[b]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                ReferenceRow<Real> r = reference_row<Real>(pb, b, h, t);
                double* o = &out.o[pb.o_index(b, t, h)];
                for (int c = 0; c < pb.head_dim; ++c) o[c] = static_cast<double>(r.o[c]);
                out.lse[pb.lse_index(b, t, h)] = static_cast<double>(r.lse);
            }
    return out;
}

} // namespace attncheck
