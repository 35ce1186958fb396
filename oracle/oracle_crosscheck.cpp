#include "oracle/oracle_crosscheck.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace attncheck {

namespace {

bool close(double a, double b, double scale, double rel) {
    if (a == b || (std::isnan(a) && std::isnan(b))) return true; // infinities of one sign included
    return std::fabs(a - b) <= rel * scale;
}

// One row of one oracle evaluation.
struct RowValues {
    const double* o; // [head_dim]
    double lse;
    const RowTolerance* tol;
    const double* o_bound; // [head_dim]
};

std::string compare_row(const std::string& where, int d, const RowValues& ra, const RowValues& rb) {
    const RowTolerance &x = *ra.tol, &y = *rb.tol;
    if (x.masked != y.masked || x.finite_input != y.finite_input || x.meaningful != y.meaningful)
        return fmt::format("{}: flags differ (masked {}/{}, finite {}/{}, meaningful {}/{})", where, x.masked, y.masked,
                           x.finite_input, y.finite_input, x.meaningful, y.meaningful);
    if (!x.finite_input && !x.masked) return {};
    const double w = std::max(x.w_max, y.w_max);
    for (int c = 0; c < d; ++c) {
        const double a = ra.o[c], b = rb.o[c];
        if (!close(a, b, std::max({std::fabs(a), std::fabs(b), w}), kOracleAgreement))
            return fmt::format("{}: O[{}] {:.17g} vs {:.17g}", where, c, a, b);
        if (!x.meaningful) continue; // its bounds judge nothing (they may be inf or NaN)
        const double ea = ra.o_bound[c], eb = rb.o_bound[c];
        if (!close(ea, eb, std::max(std::fabs(ea), std::fabs(eb)), kBoundAgreement))
            return fmt::format("{}: bound on O[{}] {:.17g} vs {:.17g}", where, c, ea, eb);
    }
    if (!close(ra.lse, rb.lse, std::max(1.0, std::fabs(ra.lse)), kOracleAgreement))
        return fmt::format("{}: LSE {:.17g} vs {:.17g}", where, ra.lse, rb.lse);
    if (!close(x.logit_reach, y.logit_reach, std::max(x.logit_reach, y.logit_reach), kOracleAgreement))
        return fmt::format("{}: logit reach {:.17g} vs {:.17g}", where, x.logit_reach, y.logit_reach);
    if (!x.meaningful) return {};
    if (!close(x.lse, y.lse, std::max(x.lse, y.lse), kBoundAgreement) ||
        !close(x.delta, y.delta, std::max(x.delta, y.delta), kBoundAgreement) ||
        !close(x.rho_p, y.rho_p, 1.0 + std::max(x.rho_p, y.rho_p), kBoundAgreement) ||
        !close(x.w_max, y.w_max, std::max(x.w_max, y.w_max), kOracleAgreement))
        return fmt::format(
            "{}: row bounds differ (LSE bound {:.17g}/{:.17g}, delta {:.17g}/{:.17g}, "
            "rho {:.17g}/{:.17g}, W {:.17g}/{:.17g})",
            where, x.lse, y.lse, x.delta, y.delta, x.rho_p, y.rho_p, x.w_max, y.w_max);
    return {};
}

std::string row_where(int s, int h, int t) { return fmt::format("sequence {}, q head {}, query {}", s, h, t); }

RowValues values_of(const AttentionProblem& p, const ReferenceOutput& r, const ProblemBounds& b, int s, int t, int h) {
    const size_t li = static_cast<size_t>(p.lse_index(s, t, h));
    const size_t oi = static_cast<size_t>(p.o_index(s, t, h));
    return {&r.o[oi], r.lse[li], &b.rows[li], &b.o[oi]};
}

bool sizes_fit(const AttentionProblem& p, const ReferenceOutput& r, const ProblemBounds& b) {
    const size_t rows = static_cast<size_t>(p.total_q()) * p.n_q_heads;
    return r.o.size() == p.q.size() && r.lse.size() == rows && b.rows.size() == rows && b.o.size() == p.q.size();
}

} // namespace

std::string compare_oracles(const AttentionProblem& p, const ReferenceOutput& ra, const ProblemBounds& ba,
                            const ReferenceOutput& rb, const ProblemBounds& bb) {
    if (!sizes_fit(p, ra, ba) || !sizes_fit(p, rb, bb)) return "oracle outputs of different sizes";
    for (int s = 0; s < p.batch(); ++s)
        for (int t = 0; t < p.q_lens[s]; ++t)
            for (int h = 0; h < p.n_q_heads; ++h) {
                const std::string why = compare_row(row_where(s, h, t), p.head_dim, values_of(p, ra, ba, s, t, h),
                                                    values_of(p, rb, bb, s, t, h));
                if (!why.empty()) return why;
            }
    return {};
}

std::string compare_with_host_rows(const AttentionProblem& p, const PrecisionProfile& f, const ReferenceOutput& r,
                                   const ProblemBounds& b, int max_rows) {
    if (!sizes_fit(p, r, b)) return "oracle outputs of the wrong size";
    const long long rows = p.total_q() * p.n_q_heads;
    if (rows == 0) return {};
    const long long step = std::max(1LL, rows / std::max(1, max_rows));
    for (long long li = 0; li < rows; li += step) {
        const long long tok = li / p.n_q_heads;
        const int h = static_cast<int>(li % p.n_q_heads);
        int s = 0;
        while (!(p.q_start[s] <= tok && tok < p.q_start[s] + p.q_lens[s])) ++s;
        const int t = static_cast<int>(tok - p.q_start[s]);
        const ReferenceRow<double> hr = reference_row<double>(p, s, h, t);
        const RowBound hb = bound_row(p, s, h, t, f);
        const RowTolerance ht = tolerance_of(hb);
        const RowValues host{hr.o.data(), hr.lse, &ht, hb.o.data()};
        const std::string why = compare_row(row_where(s, h, t), p.head_dim, host, values_of(p, r, b, s, t, h));
        if (!why.empty()) return why;
    }
    return {};
}

} // namespace attncheck
