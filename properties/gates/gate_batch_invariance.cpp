// Gate "batch_invariance" (bug class 6: split-KV LSE strides and offsets
// that are only wrong for batch > 1, per-sequence offsets taken from the
// wrong sequence). The batch is run in reverse order with a copy of the
// first sequence appended: every row must agree with the case's run within
// the two runs' bounds, and the two
// copies of the first sequence (same inputs, same lengths, different
// offsets and neighbours) must give the same bits.
#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict batch_invariance(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    std::vector<int> order;
    for (int s = p.batch() - 1; s >= 0; --s) order.push_back(s);
    order.push_back(0);
    const AttentionProblem q = select_sequences(p, order);
    if (!ctx.supports(q)) return GateVerdict::skip("reordered batch not supported: " + ctx.unsupported(q));
    const Observation obs = ctx.run(q);
    const RowMap to_case = [&](const ProbeRequest& r) {
        return std::optional<ProbeRequest>(ProbeRequest{order[r.seq], r.head, r.token});
    };
    GateVerdict v = agreement_verdict(fmt::format("batch reordered {{{}}}", fmt::join(order, ", ")), p, ctx.base(),
                                      ctx.profile(), q, obs, ctx.profile_of(q), to_case);
    if (v.status == GateStatus::fail) return v;
    const int a = p.batch() - 1, b = p.batch(); // positions of sequence 0 in q
    for (int t = 0; t < q.q_lens[a]; ++t)
        for (int h = 0; h < q.n_q_heads; ++h)
            if (!rows_bitwise_equal(q, obs, {a, h, t}, q, obs, {b, h, t}))
                return GateVerdict::fail(
                    fmt::format("sequence 0 at batch positions {} and {} (same inputs) differs at q head {}, query {}: "
                                "O[0] {:.9g} vs {:.9g}",
                                a, b, h, t, obs.o[q.o_index(a, t, h)], obs.o[q.o_index(b, t, h)]),
                    ProbeRequest{0, h, t});
    return GateVerdict::pass(v.summary + "; both copies of sequence 0 bitwise equal");
}

} // namespace attncheck::gates
