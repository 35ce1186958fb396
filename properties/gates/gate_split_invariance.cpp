// Gate "split_invariance" (bug class 3: -inf - (-inf) when merging an empty
// split; LSE-weighting mistakes in the merge). For a target that splits the
// keys (split-KV decode), the result must not depend on the split count:
// 1 split, 3 splits and more splits than the longest sequence has keys
// (so that some splits own no key at all) must each agree with the case's
// own split count within the two runs' bounds.
#include <algorithm>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict split_invariance(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    if (!ctx.profile().uses_splits) return GateVerdict::skip("target does not split the keys");
    const int longest = p.kv_lens.empty() ? 0 : *std::max_element(p.kv_lens.begin(), p.kv_lens.end());
    std::string notes;
    double worst = -1;
    for (int splits : {1, 3, longest + 2}) {
        if (splits == p.num_splits) continue;
        AttentionProblem q = p;
        q.num_splits = splits;
        if (!ctx.supports(q)) {
            notes += fmt::format("; {} splits not supported: {}", splits, ctx.unsupported(q));
            continue;
        }
        const Observation obs = ctx.run(q);
        GateVerdict v = agreement_verdict(
            fmt::format("{} vs {} splits{}", p.num_splits, splits, splits > longest ? " (some empty)" : ""), p,
            ctx.base(), ctx.bounds(), q, obs, ctx.bounds_of(q), same_rows());
        if (v.status == GateStatus::fail) return v;
        notes += "; " + v.summary;
        worst = std::max(worst, v.ratio);
    }
    return GateVerdict::pass(fmt::format("case has {} splits{}", p.num_splits, notes), worst);
}

} // namespace attncheck::gates
