// Gate "decode_prefill" (bug classes 4 and 13: causal alignment when
// q_len != kv_len; decode step t must equal prefill row t). The last query
// of every sequence run alone (a decode step against the same cache), and
// the last half of the queries (a chunk of a chunked prefill), must give the
// rows the whole prefill gives, within the two runs' bounds. A kernel
// that aligns the causal mask top-left, or offsets positions by the chunk
// start, passes q_len == kv_len and fails here.
#include <fmt/format.h>
#include <algorithm>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

namespace {

// p with only the last `keep(q_len)` queries of each sequence.
template <class Keep>
AttentionProblem query_suffix(const AttentionProblem& p, Keep keep) {
    AttentionProblem out = p;
    out.q.clear();
    out.q_start.clear();
    out.q_lens.clear();
    long long qs = 0;
    const long long row = static_cast<long long>(p.n_q_heads) * p.head_dim;
    for (int s = 0; s < p.batch(); ++s) {
        const int n = keep(p.q_lens[s]);
        out.q_lens.push_back(n);
        out.q_start.push_back(qs);
        qs += n;
        const long long first = p.q_start[s] + p.q_lens[s] - n;
        out.q.insert(out.q.end(), p.q.begin() + first * row, p.q.begin() + (first + n) * row);
    }
    return out;
}

} // namespace

GateVerdict decode_prefill(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    bool multi = false;
    for (int n : p.q_lens) multi = multi || n >= 2;
    if (!multi) return GateVerdict::skip("no sequence with two or more queries");
    std::string notes;
    double worst = -1;
    const char* names[] = {"decode (last query alone)", "suffix (last half of the queries)"};
    for (int k = 0; k < 2; ++k) {
        const AttentionProblem q = k == 0 ? query_suffix(p, [](int n) { return n > 0 ? 1 : 0; })
                                          : query_suffix(p, [](int n) { return (n + 1) / 2; });
        if (!ctx.supports(q)) {
            notes += fmt::format("; {} not supported: {}", names[k], ctx.unsupported(q));
            continue;
        }
        const Observation obs = ctx.run(q);
        const RowMap to_case = [&](const ProbeRequest& r) {
            return std::optional<ProbeRequest>(
                ProbeRequest{r.seq, r.head, r.token + p.q_lens[r.seq] - q.q_lens[r.seq]});
        };
        GateVerdict v = agreement_verdict(names[k], p, ctx.base(), ctx.bounds(), q, obs, ctx.bounds_of(q), to_case);
        if (v.status == GateStatus::fail) {
            v.summary += " -- differs from the prefill row (causal alignment when q_len != kv_len?)";
            return v;
        }
        notes += "; " + v.summary;
        worst = std::max(worst, v.ratio);
    }
    return GateVerdict::pass(notes.substr(2), worst);
}

} // namespace attncheck::gates
