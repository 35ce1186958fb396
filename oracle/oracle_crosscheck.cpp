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

} // namespace

std::string compare_oracles(const AttentionProblem& p, const ReferenceOutput& ra, const ProblemBounds& ba,
                            const ReferenceOutput& rb, const ProblemBounds& bb) {
    const size_t rows = static_cast<size_t>(p.total_q()) * p.n_q_heads;
    if (ra.o.size() != p.q.size() || rb.o.size() != p.q.size() || ra.lse.size() != rows || rb.lse.size() != rows ||
        ba.rows.size() != rows || bb.rows.size() != rows || ba.o.size() != p.q.size() || bb.o.size() != p.q.size())
        return "oracle outputs of different sizes";
    for (int s = 0; s < p.batch(); ++s)
        for (int t = 0; t < p.q_lens[s]; ++t)
            for (int h = 0; h < p.n_q_heads; ++h) {
                const size_t li = static_cast<size_t>(p.lse_index(s, t, h));
                const long long oi = p.o_index(s, t, h);
                const RowTolerance &x = ba.rows[li], &y = bb.rows[li];
                const std::string where = fmt::format("sequence {}, q head {}, query {}", s, h, t);
                if (x.masked != y.masked || x.finite_input != y.finite_input || x.meaningful != y.meaningful)
                    return fmt::format("{}: flags differ (masked {}/{}, finite {}/{}, meaningful {}/{})", where,
                                       x.masked, y.masked, x.finite_input, y.finite_input, x.meaningful, y.meaningful);
                if (!x.finite_input && !x.masked) continue;
                const double w = std::max(x.w_max, y.w_max);
                for (int c = 0; c < p.head_dim; ++c) {
                    const double a = ra.o[oi + c], b = rb.o[oi + c];
                    if (!close(a, b, std::max({std::fabs(a), std::fabs(b), w}), kOracleAgreement))
                        return fmt::format("{}: O[{}] {:.17g} vs {:.17g}", where, c, a, b);
                    if (!x.meaningful) continue; // its bounds judge nothing (they may be inf or NaN)
                    const double ea = ba.o[oi + c], eb = bb.o[oi + c];
                    if (!close(ea, eb, std::max(std::fabs(ea), std::fabs(eb)), kBoundAgreement))
                        return fmt::format("{}: bound on O[{}] {:.17g} vs {:.17g}", where, c, ea, eb);
                }
                if (!close(ra.lse[li], rb.lse[li], std::max(1.0, std::fabs(ra.lse[li])), kOracleAgreement))
                    return fmt::format("{}: LSE {:.17g} vs {:.17g}", where, ra.lse[li], rb.lse[li]);
                if (!x.meaningful) continue;
                if (!close(x.lse, y.lse, std::max(x.lse, y.lse), kBoundAgreement) ||
                    !close(x.delta, y.delta, std::max(x.delta, y.delta), kBoundAgreement) ||
                    !close(x.rho_p, y.rho_p, 1.0 + std::max(x.rho_p, y.rho_p), kBoundAgreement) ||
                    !close(x.w_max, y.w_max, std::max(x.w_max, y.w_max), kOracleAgreement))
                    return fmt::format(
                        "{}: row bounds differ (LSE bound {:.17g}/{:.17g}, delta {:.17g}/{:.17g}, "
                        "rho {:.17g}/{:.17g}, W {:.17g}/{:.17g})",
                        where, x.lse, y.lse, x.delta, y.delta, x.rho_p, y.rho_p, x.w_max, y.w_max);
            }
    return {};
}

} // namespace attncheck
