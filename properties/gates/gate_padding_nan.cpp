// Gate "padding_nan" (bug classes 8 and 9: partial tiles and padding read as
// data, out-of-bounds KV reads). Between the case's sequences sit unused
// cache slots: after every sequence, a filler sequence of one query and 64
// keys (a whole kernel tile) whose Q, K and V are all NaN. A kernel that
// reads past a sequence's kv_len, or past its queries, picks up NaN. Every
// real row must agree with the case's run within the two runs' bounds (the
// fillers' own rows are not compared).
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict padding_nan(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    constexpr int kPadKeys = 64;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    AttentionProblem q = select_sequences(p, {});
    const long long qrow = static_cast<long long>(p.n_q_heads) * p.head_dim;
    const long long krow = static_cast<long long>(p.n_kv_heads) * p.head_dim;
    for (int s = 0; s < p.batch(); ++s) {
        const AttentionProblem one = select_sequences(p, {s});
        q.q_start.push_back(q.q.size() / qrow);
        q.kv_start.push_back(q.k.size() / krow);
        q.q_lens.push_back(p.q_lens[s]);
        q.kv_lens.push_back(p.kv_lens[s]);
        q.q.insert(q.q.end(), one.q.begin(), one.q.end());
        q.k.insert(q.k.end(), one.k.begin(), one.k.end());
        q.v.insert(q.v.end(), one.v.begin(), one.v.end());
        // the filler
        q.q_start.push_back(q.q.size() / qrow);
        q.kv_start.push_back(q.k.size() / krow);
        q.q_lens.push_back(1);
        q.kv_lens.push_back(kPadKeys);
        q.q.insert(q.q.end(), qrow, nan);
        q.k.insert(q.k.end(), kPadKeys * krow, nan);
        q.v.insert(q.v.end(), kPadKeys * krow, nan);
    }
    if (!ctx.supports(q)) return GateVerdict::skip("padded batch not supported: " + ctx.unsupported(q));
    const Observation obs = ctx.run(q);
    const RowMap to_case = [](const ProbeRequest& r) { // case sequence s sits at position 2s
        return r.seq % 2 == 0 ? std::optional<ProbeRequest>(ProbeRequest{r.seq / 2, r.head, r.token}) : std::nullopt;
    };
    GateVerdict v = agreement_verdict("NaN-filled slots between sequences", p, ctx.base(), ctx.bounds(), q, obs,
                                      ctx.bounds_of(q), to_case);
    if (v.status == GateStatus::fail) v.summary += " -- padding or a neighbour's slots were read as data";
    return v;
}

} // namespace attncheck::gates
