// Where the input errors of the bound propagation come from: the a-priori
// bound feeds each stage the bound of its input (so it compounds with depth,
// but needs no engine), the observed bound feeds it the engine's actual
// error against the oracle (so a stage is judged on what it was given).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "model/oracle/model_bound_propagation.hpp"
#include "oracle/error_model.hpp"

namespace attncheck {

namespace model_bounds {

namespace {

// The attention problem an implementation would have seen: the oracle's
// q_rope, k_rope, v rounded to T (the a-priori local bound is evaluated on
// it; to first order its magnitudes are the implementation's).
AttentionProblem rounded_problem(const ModelConfig& c, const OracleTrace& o, int l, const ModelPrecision& P) {
    AttentionProblem pb;
    pb.n_q_heads = c.n_q_heads;
    pb.n_kv_heads = c.n_kv_heads;
    pb.head_dim = c.head_dim;
    pb.q_lens = {o.len};
    pb.kv_lens = {o.len};
    pb.q_start = {0};
    pb.kv_start = {0};
    pb.causal = true;
    pb.num_splits = P.attn_splits;
    pb.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    pb.dtype = P.store;
    auto cp = [&](Stage s, std::vector<float>& dst) {
        const auto& v = o.at(l, s);
        dst.resize(v.size());
        for (size_t i = 0; i < v.size(); ++i) dst[i] = round_to(P.store, v[i]);
    };
    cp(Stage::q_rope, pb.q);
    cp(Stage::k_rope, pb.k);
    cp(Stage::v, pb.v);
    return pb;
}

void local_from_row_bound(const RowBound& rb, int hd, double* out) {
    for (int c = 0; c < hd; ++c)
        out[c] =
            (rb.masked || (rb.meaningful && rb.finite_input)) ? (rb.masked ? 0.0 : rb.o[static_cast<size_t>(c)]) : kInf;
}

class AprioriSource final : public Source {
public:
    AprioriSource(const ModelWeights& w, const OracleTrace& o, const ModelPrecision& P, const Bounds& B)
        : w_(w), o_(o), P_(P), B_(B) {}
    void err(int, Stage, int r, const std::vector<double>& B, int width, double* out) override {
        std::copy_n(&B[static_cast<size_t>(r) * width], width, out);
    }
    void cache_err(int l, int, int j, bool v, double* out) override {
        const ModelConfig& c = w_.config;
        const auto& b = B_[bounds_index(c, l, v ? Stage::v : Stage::k_rope)];
        std::copy_n(&b[static_cast<size_t>(j) * c.kv_dim()], c.kv_dim(), out);
    }
    void attn_local(int l, int r, int h, double* out) override {
        if (pb_layer_ != l) {
            pb_ = rounded_problem(w_.config, o_, l, P_);
            pb_layer_ = l;
        }
        local_from_row_bound(bound_row(pb_, 0, h, r, P_.attn), w_.config.head_dim, out);
    }

private:
    const ModelWeights& w_;
    const OracleTrace& o_;
    const ModelPrecision& P_;
    const Bounds& B_; // the propagation's own table (filled as it goes)
    AttentionProblem pb_;
    int pb_layer_ = -1;
};

// The engine's actual errors, from its trace.
class ObservedSource final : public Source {
public:
    ObservedSource(const ModelWeights& w, const ModelTrace& et, const std::vector<Row>& rows)
        : w_(w), et_(et), rows_(rows) {}
    void err(int l, Stage s, int r, const std::vector<double>&, int width, double* out) override {
        const float* e = &et_.at(l, s)[static_cast<size_t>(r) * width];
        const double* o = rows_[static_cast<size_t>(r)].o->row(l, s, rows_[static_cast<size_t>(r)].pos, width);
        for (int i = 0; i < width; ++i) out[i] = diff(e[i], o[i]);
    }
    void cache_err(int l, int r, int j, bool v, double* out) override {
        const ModelConfig& c = w_.config;
        const AttentionProblem& pb = et_.attn[static_cast<size_t>(l)];
        const int b = problem_seq(l, r);
        const float* e = &(v ? pb.v : pb.k)[static_cast<size_t>(pb.kv_start[static_cast<size_t>(b)] + j) * c.kv_dim()];
        const double* o = rows_[static_cast<size_t>(r)].o->row(l, v ? Stage::v : Stage::k_rope, j, c.kv_dim());
        for (int i = 0; i < c.kv_dim(); ++i) out[i] = diff(e[i], o[i]);
    }
    void attn_local(int l, int r, int h, double* out) override {
        const AttentionProblem& pb = et_.attn[static_cast<size_t>(l)];
        const int b = problem_seq(l, r);
        const int t = rows_[static_cast<size_t>(r)].pos -
                      (pb.kv_lens[static_cast<size_t>(b)] - pb.q_lens[static_cast<size_t>(b)]);
        local_from_row_bound(bound_row(pb, b, h, t, et_.attn_profile[static_cast<size_t>(l)]), w_.config.head_dim, out);
    }
    static double diff(float e, double o) { return std::isfinite(e) ? std::fabs(static_cast<double>(e) - o) : kInf; }
    int problem_seq(int l, int r) const {
        const auto& ids = et_.attn_seq_ids[static_cast<size_t>(l)];
        const int slot = et_.rows[static_cast<size_t>(r)].first;
        for (size_t b = 0; b < ids.size(); ++b)
            if (ids[b] == slot) return static_cast<int>(b);
        throw std::logic_error("check_forward: a row's sequence is not in the attention problem");
    }

private:
    const ModelWeights& w_;
    const ModelTrace& et_;
    const std::vector<Row>& rows_;
};

} // namespace

Bounds observed_bounds(const ModelWeights& w, const ModelTrace& engine, const std::vector<Row>& rows,
                       const ModelPrecision& P) {
    Bounds B;
    ObservedSource src(w, engine, rows);
    propagate(w, rows, P, src, B);
    return B;
}

} // namespace model_bounds

OracleTrace apriori_bounds(const ModelWeights& w, const OracleTrace& o, const ModelPrecision& P) {
    std::vector<model_bounds::Row> rows;
    for (int i = 0; i < o.len; ++i) rows.push_back({&o, i});
    model_bounds::Bounds B;
    model_bounds::AprioriSource src(w, o, P, B);
    model_bounds::propagate(w, rows, P, src, B);
    OracleTrace out;
    out.layers = o.layers;
    out.len = o.len;
    out.tokens = o.tokens;
    out.values = std::move(B);
    return out;
}

} // namespace attncheck
