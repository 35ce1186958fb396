#include "oracle/parity.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace attncheck {

void QuantityReport::add(long long idx, double target, double oracle, double bound) {
    ++checked;
    double err = std::fabs(target - oracle);
    if (std::isnan(err)) err = std::numeric_limits<double>::infinity(); // NaN output always violates
    const double ratio = bound > 0 ? err / bound : (err > 0 ? std::numeric_limits<double>::infinity() : 0.0);
    if (err > max_err) max_err = err;
    if (ratio > worst_ratio || worst < 0) {
        worst_ratio = ratio;
        worst = idx;
        worst_err = err;
        worst_bound = bound;
        worst_target = target;
        worst_oracle = oracle;
    }
    if (!(err <= bound)) ++violations;
}

std::string ParityReport::summary() const {
    return fmt::format(
        "rows {} (masked {}, out of range {}, non-finite input {}); O: max err {:.3g}, worst err/bound {:.3g} "
        "({} violations); LSE: max err {:.3g}, worst err/bound {:.3g} ({} violations); masked-row violations {}",
        rows, masked_rows, out_of_range_rows, nonfinite_input_rows, o.max_err, o.worst_ratio, o.violations, lse.max_err,
        lse.worst_ratio, lse.violations, masked_violations);
}

ParityReport check_parity(const AttentionProblem& pb, const ReferenceOutput& ref, const Observation& obs,
                          const PrecisionProfile& prof) {
    return check_parity(pb, ref, bound_problem(pb, prof), obs);
}

ParityReport check_parity(const AttentionProblem& pb, const ReferenceOutput& ref, const ProblemBounds& bounds,
                          const Observation& obs) {
    ParityReport rep;
    for (int b = 0; b < pb.batch(); ++b)
        for (int t = 0; t < pb.q_lens[b]; ++t)
            for (int h = 0; h < pb.n_q_heads; ++h) {
                ++rep.rows;
                const long long oi = pb.o_index(b, t, h), li = pb.lse_index(b, t, h);
                const RowTolerance& rb = bounds.rows[static_cast<size_t>(li)];
                if (rb.masked) {
                    ++rep.masked_rows;
                    bool ok = obs.lse[li] == -std::numeric_limits<float>::infinity();
                    for (int c = 0; c < pb.head_dim; ++c) ok = ok && obs.o[oi + c] == 0.0f;
                    if (!ok) ++rep.masked_violations;
                    continue;
                }
                if (!rb.finite_input) {
                    ++rep.nonfinite_input_rows;
                    continue;
                }
                if (!rb.meaningful) {
                    ++rep.out_of_range_rows;
                    continue;
                }
                rep.max_rho_p = std::max(rep.max_rho_p, rb.rho_p);
                for (int c = 0; c < pb.head_dim; ++c) rep.o.add(oi + c, obs.o[oi + c], ref.o[oi + c], bounds.o[oi + c]);
                rep.lse.add(li, obs.lse[li], ref.lse[li], rb.lse);
            }
    return rep;
}

} // namespace attncheck
