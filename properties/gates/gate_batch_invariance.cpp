// Gate "batch_invariance" (bug class 6: split-KV LSE strides and offsets
// that are only wrong for batch > 1, per-sequence offsets taken from the
// wrong sequence). The batch is run in reverse order with a copy of the
// first sequence appended: every row must agree with the case's run within
// the two runs' bounds, and the two copies of the first sequence (same
// inputs, same lengths, different offsets and neighbours) must give the
// same bits.
//
// The bitwise half is a promise only some targets make (deterministic
// serving: Target::promises_batch_invariance). A target that makes it fails
// when the copies differ. One that does not is judged under the error model
// alone: its verdict can only pass as "not batch invariant: ...", saying
// what differed or that the copies happened to agree, so a campaign never
// reports the bitwise property as holding for a target that does not
// guarantee it, and never fails one for not keeping a promise it did not
// make.
#include <cstring>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

namespace {

// The first channel of O (else the LSE) whose bits differ between two rows.
std::string first_difference(const AttentionProblem& q, const Observation& obs, const ProbeRequest& ra,
                             const ProbeRequest& rb) {
    const long long oa = q.o_index(ra.seq, ra.token, ra.head), ob = q.o_index(rb.seq, rb.token, rb.head);
    for (int c = 0; c < q.head_dim; ++c)
        if (std::memcmp(&obs.o[oa + c], &obs.o[ob + c], sizeof(float)) != 0)
            return fmt::format("O[{}] {:.9g} vs {:.9g}", c, obs.o[oa + c], obs.o[ob + c]);
    const long long la = q.lse_index(ra.seq, ra.token, ra.head), lb = q.lse_index(rb.seq, rb.token, rb.head);
    return fmt::format("LSE {:.9g} vs {:.9g}", obs.lse[la], obs.lse[lb]);
}

} // namespace

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
                                      ctx.bounds(), q, obs, ctx.bounds_of(q), to_case);
    if (v.status == GateStatus::fail) return v;
    const bool promised = ctx.target().promises_batch_invariance();
    const int a = p.batch() - 1, b = p.batch(); // positions of sequence 0 in q
    for (int t = 0; t < q.q_lens[a]; ++t)
        for (int h = 0; h < q.n_q_heads; ++h)
            if (!rows_bitwise_equal(q, obs, {a, h, t}, q, obs, {b, h, t})) {
                const std::string diff = fmt::format(
                    "sequence 0 at batch positions {} and {} (same inputs) differs at q head {}, query {}: {}", a, b, h,
                    t, first_difference(q, obs, {a, h, t}, {b, h, t}));
                if (promised) return GateVerdict::fail(diff, ProbeRequest{0, h, t});
                return GateVerdict::pass(fmt::format("not batch invariant: {} (the target does not promise bitwise "
                                                     "batch invariance; judged under the error model: {})",
                                                     diff, v.summary),
                                         v.ratio);
            }
    if (!promised)
        return GateVerdict::pass(
            fmt::format("not batch invariant: not promised by the target (the two copies of sequence 0 happened to "
                        "agree bitwise on this case); judged under the error model: {}",
                        v.summary),
            v.ratio);
    return GateVerdict::pass(v.summary + "; both copies of sequence 0 bitwise equal", v.ratio);
}

} // namespace attncheck::gates
