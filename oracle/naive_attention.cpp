#include "oracle/naive_attention.hpp"

#include <cmath>
#include <limits>
#include <vector>

namespace attncheck {

Observation naive_attention(const AttentionProblem& pb, const PrecisionProfile& prof, NaiveDefect defect) {
    const int d = pb.head_dim;
    Observation obs;
    obs.o.assign(pb.q.size(), 0.0f);
    obs.lse.assign(static_cast<size_t>(pb.total_q()) * pb.n_q_heads, 0.0f);
    const float scale = static_cast<float>(defect == NaiveDefect::scale_off_1pct ? pb.scale * 1.01 : pb.scale);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    auto store = [&](bool on, float x) { return on ? round_to(prof.store, x) : x; };
    std::vector<float> s, acc(static_cast<size_t>(d));
    for (int b = 0; b < pb.batch(); ++b)
        for (int t = 0; t < pb.q_lens[b]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                const int n = pb.kv_lens[b], kvh = h / pb.group();
                const float* q = &pb.q[pb.q_index(b, t, h)];
                s.assign(n, neg_inf);
                float m = neg_inf;
                int first_visible = -1;
                for (int j = 0; j < n; ++j) {
                    if (!oracle_key_visible(pb, b, t, j)) continue;
                    if (first_visible < 0) first_visible = j;
                    const float* k = &pb.k[pb.kv_index(b, j, kvh)];
                    float dot = 0.0f;
                    for (int c = 0; c < d; ++c) dot += q[c] * k[c];
                    s[j] = store(prof.scores_stored, dot * scale);
                    if (s[j] > m) m = s[j];
                }
                float* o = &obs.o[pb.o_index(b, t, h)];
                float& lse = obs.lse[pb.lse_index(b, t, h)];
                if (first_visible < 0) {
                    lse = neg_inf;
                    continue;
                }
                float l = 0.0f;
                for (int j = 0; j < n; ++j) {
                    if (s[j] == neg_inf) continue;
                    s[j] = std::exp(s[j] - m); // s now holds the exponentials
                    if (!(defect == NaiveDefect::drop_key_from_normalizer && j == first_visible)) l += s[j];
                }
                std::fill(acc.begin(), acc.end(), 0.0f);
                for (int j = 0; j < n; ++j) {
                    if (s[j] == neg_inf) continue;
                    const float p = store(prof.probs_stored, s[j] / l);
                    const float* v = &pb.v[pb.kv_index(b, j, kvh)];
                    for (int c = 0; c < d; ++c) acc[c] += p * v[c];
                }
                for (int c = 0; c < d; ++c) o[c] = round_to(prof.output, acc[c]);
                lse = m + std::log(l);
            }
    return obs;
}

RelativeCheck relative_to_naive(const AttentionProblem& /*pb*/, const ReferenceOutput& ref, const Observation& target,
                                const Observation& naive, DType output, double k) {
    RelativeCheck rc;
    rc.k = k;
    double max_o = 0;
    for (size_t i = 0; i < ref.o.size(); ++i) {
        if (!std::isfinite(ref.o[i])) continue;
        if (!std::isfinite(naive.o[i])) rc.judged = false;
        double te = std::fabs(static_cast<double>(target.o[i]) - ref.o[i]);
        if (std::isnan(te)) te = std::numeric_limits<double>::infinity();
        rc.target_err = std::max(rc.target_err, te);
        rc.naive_err = std::max(rc.naive_err, std::fabs(static_cast<double>(naive.o[i]) - ref.o[i]));
        max_o = std::max(max_o, std::fabs(ref.o[i]));
    }
    const double uO = output == DType::f32 ? 0x1p-24 : unit_roundoff(output);
    rc.floor = 2.0 * uO * max_o;
    return rc;
}

} // namespace attncheck
