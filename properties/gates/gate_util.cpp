#include "properties/gates/gate_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

namespace attncheck {

namespace {

int seq_of_token(const AttentionProblem& p, long long tok) {
    // q_start is non-decreasing; the sequence is the last one starting at or
    // before tok that is non-empty.
    int s = 0;
    for (int b = 0; b < p.batch(); ++b)
        if (p.q_start[b] <= tok && tok < p.q_start[b] + p.q_lens[b]) s = b;
    return s;
}

} // namespace

ProbeRequest row_of_lse_index(const AttentionProblem& p, long long flat) {
    const long long tok = flat / p.n_q_heads;
    ProbeRequest r;
    r.head = static_cast<int>(flat % p.n_q_heads);
    r.seq = seq_of_token(p, tok);
    r.token = static_cast<int>(tok - p.q_start[r.seq]);
    return r;
}

ProbeRequest row_of_o_index(const AttentionProblem& p, long long flat) {
    return row_of_lse_index(p, flat / p.head_dim);
}

std::string row_name(const ProbeRequest& r) {
    return fmt::format("sequence {}, q head {}, query {}", r.seq, r.head, r.token);
}

GateVerdict parity_verdict(const std::string& what, const AttentionProblem& p, const ReferenceOutput& ref,
                           const ProblemBounds& bounds, const Observation& obs) {
    const ParityReport rep = check_parity(p, ref, bounds, obs);
    const double ratio = std::max(rep.o.worst_ratio, rep.lse.worst_ratio);
    if (rep.pass()) {
        GateVerdict v =
            GateVerdict::pass(fmt::format("{}: O worst err/bound {:.3g}, LSE worst err/bound {:.3g} over {} rows", what,
                                          rep.o.worst_ratio, rep.lse.worst_ratio, rep.rows));
        if (!rep.fully_judged())
            v.details.push_back(
                fmt::format("{} rows outside the bound's meaningful range, {} with non-finite inputs: not judged",
                            rep.out_of_range_rows, rep.nonfinite_input_rows));
        v.ratio = ratio;
        return v;
    }
    if (rep.masked_violations > 0 && rep.o.violations == 0 && rep.lse.violations == 0) {
        // Find the first masked row that is not exactly O = 0, LSE = -inf.
        for (long long li = 0; li < static_cast<long long>(obs.lse.size()); ++li) {
            if (ref.lse[li] != -std::numeric_limits<double>::infinity()) continue;
            const ProbeRequest r = row_of_lse_index(p, li);
            bool ok = obs.lse[li] == -std::numeric_limits<float>::infinity();
            const long long oi = p.o_index(r.seq, r.token, r.head);
            float bad = 0;
            for (int c = 0; c < p.head_dim; ++c)
                if (obs.o[oi + c] != 0.0f) {
                    ok = false;
                    bad = obs.o[oi + c];
                }
            if (!ok) {
                GateVerdict v =
                    GateVerdict::fail(fmt::format("{}: fully masked row ({}) gave LSE {} and O element {} "
                                                  "instead of LSE -inf, O 0 ({} such rows)",
                                                  what, row_name(r), obs.lse[li], bad, rep.masked_violations),
                                      r);
                v.ratio = ratio;
                return v;
            }
        }
    }
    const bool o_worse = rep.o.worst_ratio >= rep.lse.worst_ratio;
    const QuantityReport& q = o_worse ? rep.o : rep.lse;
    const ProbeRequest r = o_worse ? row_of_o_index(p, q.worst) : row_of_lse_index(p, q.worst);
    std::string where = row_name(r);
    if (o_worse) where += fmt::format(", channel {}", q.worst % p.head_dim);
    GateVerdict v = GateVerdict::fail(
        fmt::format(
            "{}: {} = {:.9g}, oracle {:.9g}: error {:.3g} is {:.3g} x its bound {:.3g} ({}; {} elements out of bound)",
            what, o_worse ? "O" : "LSE", q.worst_target, q.worst_oracle, q.worst_err, q.worst_ratio, q.worst_bound,
            where, rep.o.violations + rep.lse.violations),
        r);
    v.details.push_back(rep.summary());
    v.ratio = ratio;
    return v;
}

bool rows_bitwise_equal(const AttentionProblem& pa, const Observation& a, const ProbeRequest& ra,
                        const AttentionProblem& pb, const Observation& b, const ProbeRequest& rb) {
    const long long ia = pa.o_index(ra.seq, ra.token, ra.head), ib = pb.o_index(rb.seq, rb.token, rb.head);
    if (std::memcmp(&a.o[ia], &b.o[ib], sizeof(float) * pa.head_dim) != 0) return false;
    const float la = a.lse[pa.lse_index(ra.seq, ra.token, ra.head)];
    const float lb = b.lse[pb.lse_index(rb.seq, rb.token, rb.head)];
    return std::memcmp(&la, &lb, sizeof(float)) == 0;
}

bool rows_same_values(const AttentionProblem& pa, const Observation& a, const ProbeRequest& ra,
                      const AttentionProblem& pb, const Observation& b, const ProbeRequest& rb) {
    auto same = [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); };
    const long long ia = pa.o_index(ra.seq, ra.token, ra.head), ib = pb.o_index(rb.seq, rb.token, rb.head);
    for (int c = 0; c < pa.head_dim; ++c)
        if (!same(a.o[ia + c], b.o[ib + c])) return false;
    return same(a.lse[pa.lse_index(ra.seq, ra.token, ra.head)], b.lse[pb.lse_index(rb.seq, rb.token, rb.head)]);
}

std::optional<BitDifference> first_bit_difference(const AttentionProblem& p, const Observation& a,
                                                  const Observation& b) {
    for (size_t i = 0; i < a.o.size(); ++i)
        if (std::memcmp(&a.o[i], &b.o[i], sizeof(float)) != 0) {
            const ProbeRequest row = row_of_o_index(p, static_cast<long long>(i));
            return BitDifference{row, fmt::format("O at {}, channel {}: {:.9g} then {:.9g}", row_name(row),
                                                  i % p.head_dim, a.o[i], b.o[i])};
        }
    for (size_t i = 0; i < a.lse.size(); ++i)
        if (std::memcmp(&a.lse[i], &b.lse[i], sizeof(float)) != 0) {
            const ProbeRequest row = row_of_lse_index(p, static_cast<long long>(i));
            return BitDifference{row, fmt::format("LSE at {}: {:.9g} then {:.9g}", row_name(row), a.lse[i], b.lse[i])};
        }
    return std::nullopt;
}

AttentionProblem select_sequences(const AttentionProblem& p, const std::vector<int>& seqs) {
    AttentionProblem out = p;
    out.q_lens.clear();
    out.kv_lens.clear();
    out.q_start.clear();
    out.kv_start.clear();
    out.q.clear();
    out.k.clear();
    out.v.clear();
    long long qs = 0, ks = 0;
    const long long qrow = static_cast<long long>(p.n_q_heads) * p.head_dim;
    const long long krow = static_cast<long long>(p.n_kv_heads) * p.head_dim;
    for (int s : seqs) {
        out.q_lens.push_back(p.q_lens[s]);
        out.kv_lens.push_back(p.kv_lens[s]);
        out.q_start.push_back(qs);
        out.kv_start.push_back(ks);
        qs += p.q_lens[s];
        ks += p.kv_lens[s];
        out.q.insert(out.q.end(), p.q.begin() + p.q_start[s] * qrow, p.q.begin() + (p.q_start[s] + p.q_lens[s]) * qrow);
        out.k.insert(out.k.end(), p.k.begin() + p.kv_start[s] * krow,
                     p.k.begin() + (p.kv_start[s] + p.kv_lens[s]) * krow);
        out.v.insert(out.v.end(), p.v.begin() + p.kv_start[s] * krow,
                     p.v.begin() + (p.kv_start[s] + p.kv_lens[s]) * krow);
    }
    return out;
}

int visible_keys(const AttentionProblem& p, int seq, int tok) {
    int n = 0;
    for (int j = 0; j < p.kv_lens[seq]; ++j) n += oracle_key_visible(p, seq, tok, j) ? 1 : 0;
    return n;
}

std::optional<ProbeRequest> default_probe_row(const AttentionProblem& p, int head) {
    std::optional<ProbeRequest> best;
    int most = 0;
    for (int b = 0; b < p.batch(); ++b) {
        if (p.q_lens[b] == 0) continue;
        const int tok = p.q_lens[b] - 1;
        const int n = visible_keys(p, b, tok);
        // A row with a NaN or inf among its inputs has no defined stages to
        // judge (found on the H100: a NaN query made the probed max exp NaN).
        if (n > most && bound_row(p, b, std::min(head, p.n_q_heads - 1), tok, PrecisionProfile{}).finite_input) {
            most = n;
            best = ProbeRequest{b, std::min(head, p.n_q_heads - 1), tok};
        }
    }
    return best;
}

} // namespace attncheck

namespace attncheck {

double normalization_tolerance(const AttentionProblem& p, const PrecisionProfile& prof, int n_visible, double vmax) {
    const double n_terms = n_visible + 10 + (prof.kv_tile > 0 ? 2.0 * (n_visible / prof.kv_tile + 2) : 0.0) +
                           (prof.uses_splits ? 2.0 * p.num_splits : 0.0);
    return (2 * gamma_n(n_terms, prof.u_acc) + 2 * unit_roundoff(prof.output)) * vmax;
}

} // namespace attncheck

namespace attncheck {

RowMap same_rows() {
    return [](const ProbeRequest& r) { return std::optional<ProbeRequest>(r); };
}

GateVerdict agreement_verdict(const std::string& what, const AttentionProblem& pa, const Observation& oa,
                              const ProblemBounds& bnd_a, const AttentionProblem& pb, const Observation& ob,
                              const ProblemBounds& bnd_b, const RowMap& to_a, double lse_shift) {
    long long rows = 0, unjudged = 0;
    double worst = 0;
    for (int s = 0; s < pb.batch(); ++s)
        for (int t = 0; t < pb.q_lens[s]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                const ProbeRequest rb{s, h, t};
                const auto ra = to_a(rb);
                if (!ra) continue;
                const long long ia = pa.o_index(ra->seq, ra->token, ra->head), ib = pb.o_index(s, t, h);
                const RowTolerance& ba = bnd_a.rows[static_cast<size_t>(pa.lse_index(ra->seq, ra->token, ra->head))];
                const RowTolerance& bb = bnd_b.rows[static_cast<size_t>(pb.lse_index(s, t, h))];
                const float la = oa.lse[pa.lse_index(ra->seq, ra->token, ra->head)], lb = ob.lse[pb.lse_index(s, t, h)];
                ++rows;
                // Bitwise equal rows agree, even when not finite: finiteness
                // is the row_max gate's to judge, not a metamorphic relation's.
                if (rows_bitwise_equal(pa, oa, *ra, pb, ob, rb)) continue;
                if (ba.masked || bb.masked) {
                    bool same = la == lb; // both -inf
                    for (int c = 0; c < pb.head_dim; ++c) same = same && oa.o[ia + c] == ob.o[ib + c];
                    if (!same)
                        return GateVerdict::fail(fmt::format("{}: fully masked row ({}) differs: LSE {:.6g} vs {:.6g}",
                                                             what, row_name(*ra), la, lb),
                                                 ra);
                    continue;
                }
                if (!ba.finite_input || !bb.finite_input || !ba.meaningful || !bb.meaningful) {
                    ++unjudged;
                    continue;
                }
                for (int c = 0; c < pb.head_dim; ++c) {
                    const double err = std::fabs(static_cast<double>(oa.o[ia + c]) - ob.o[ib + c]);
                    const double tol = bnd_a.o[static_cast<size_t>(ia + c)] + bnd_b.o[static_cast<size_t>(ib + c)];
                    worst = std::max(worst, err / tol);
                    if (!(err <= tol)) {
                        GateVerdict v = GateVerdict::fail(
                            fmt::format(
                                "{}: O[{}] of {} is {:.9g} in one run and {:.9g} in the other: difference {:.3g} "
                                "exceeds the two runs' bounds {:.3g}",
                                what, c, row_name(*ra), oa.o[ia + c], ob.o[ib + c], err, tol),
                            ra);
                        v.ratio = err / tol;
                        return v;
                    }
                }
                const double lerr = std::fabs(static_cast<double>(la) - (lb + lse_shift)), ltol = ba.lse + bb.lse;
                worst = std::max(worst, lerr / ltol);
                if (!(lerr <= ltol)) {
                    GateVerdict v = GateVerdict::fail(fmt::format("{}: LSE of {} is {:.9g} in one run and {:.9g} in "
                                                                  "the other (difference {:.3g}, bounds {:.3g})",
                                                                  what, row_name(*ra), la, lb, lerr, ltol),
                                                      ra);
                    v.ratio = lerr / ltol;
                    return v;
                }
            }
    GateVerdict v =
        GateVerdict::pass(fmt::format("{}: {} rows agree (worst difference/bounds {:.3g})", what, rows, worst), worst);
    if (unjudged)
        v.details.push_back(fmt::format("{} rows outside the bounds' meaningful range: not judged", unjudged));
    return v;
}

} // namespace attncheck

namespace attncheck {

std::optional<ShiftedPair> shifted_pair(const AttentionProblem& p, int sign) {
    const int d = p.head_dim;
    const double S = std::exp2(std::floor(std::log2(2e6 / (d + 2))));
    // alpha * beta = S / scale, split evenly between two powers of two.
    const double prod = std::exp2(std::round(std::log2(S / std::fabs(p.scale))));
    const double alpha = std::exp2(std::ceil(std::log2(prod) / 2));
    const double beta = prod / alpha;
    if (alpha > max_finite(p.dtype) / 2 || beta < min_normal(p.dtype)) return std::nullopt;
    ShiftedPair sp{p, p, sign * alpha * beta * p.scale};
    for (size_t i = 0; i < p.q.size(); i += d) sp.p0.q[i] = sp.p1.q[i] = static_cast<float>(alpha);
    for (size_t i = 0; i < p.k.size(); i += d) {
        sp.p0.k[i] = 0.0f;
        sp.p1.k[i] = static_cast<float>(sign * beta);
    }
    return sp;
}

bool any_visible_row(const AttentionProblem& p) {
    for (int s = 0; s < p.batch(); ++s)
        if (p.q_lens[s] > 0 && p.kv_lens[s] > 0 && visible_keys(p, s, p.q_lens[s] - 1) > 0) return true;
    return false;
}

} // namespace attncheck
