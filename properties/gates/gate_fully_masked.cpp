// Gate "fully_masked" (bug classes 1 and 2: a row with no visible key gives
// NaN or garbage; a finite mask sentinel turns "nothing visible" into "the
// masked keys, averaged"): such a row must give exactly O = 0 and
// LSE = -inf. Besides the case's own such rows, two sequences are appended:
// an empty cache (q_len 1, kv_len 0), and, for causal cases, q_len 3 against
// one key, whose first two queries see nothing although the key is in the
// tile the kernel visits for the third.
#include <cmath>

#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

namespace {

// p plus one sequence of q_len queries and kv_len keys, filled with small
// integers (exact in every dtype).
AttentionProblem append_sequence(const AttentionProblem& p, int q_len, int kv_len) {
    AttentionProblem out = p;
    out.q_start.push_back(p.total_q());
    out.kv_start.push_back(p.total_kv());
    out.q_lens.push_back(q_len);
    out.kv_lens.push_back(kv_len);
    const long long qn = static_cast<long long>(q_len) * p.n_q_heads * p.head_dim;
    const long long kn = static_cast<long long>(kv_len) * p.n_kv_heads * p.head_dim;
    for (long long i = 0; i < qn; ++i) out.q.push_back(static_cast<float>(i % 5 - 2));
    for (long long i = 0; i < kn; ++i) out.k.push_back(static_cast<float>(i % 3 + 1));
    for (long long i = 0; i < kn; ++i) out.v.push_back(static_cast<float>(i % 7 + 1));
    return out;
}

} // namespace

GateVerdict fully_masked(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    std::vector<AttentionProblem> probs{p, append_sequence(p, 1, 0)};
    if (p.causal) probs.push_back(append_sequence(p, 3, 1));
    long long checked = 0;
    std::string skipped;
    for (size_t k = 0; k < probs.size(); ++k) {
        const AttentionProblem& q = probs[k];
        if (k > 0 && !ctx.supports(q)) {
            skipped += fmt::format("; appended sequence (q {}, kv {}) not supported: {}", q.q_lens.back(),
                                   q.kv_lens.back(), ctx.unsupported(q));
            continue;
        }
        const Observation obs = k == 0 ? ctx.base() : ctx.run(q);
        for (int s = 0; s < q.batch(); ++s)
            for (int t = 0; t < q.q_lens[s]; ++t) {
                if (visible_keys(q, s, t) > 0) continue;
                for (int h = 0; h < q.n_q_heads; ++h) {
                    ++checked;
                    const float lse = obs.lse[q.lse_index(s, t, h)];
                    const long long oi = q.o_index(s, t, h);
                    int bad = -1;
                    for (int c = 0; c < q.head_dim && bad < 0; ++c)
                        if (obs.o[oi + c] != 0.0f) bad = c;
                    if (lse != -INFINITY || bad >= 0) {
                        const std::string where =
                            k == 0 ? row_name({s, h, t})
                                   : fmt::format("appended sequence (q_len {}, kv_len {}), q head {}, query {}",
                                                 q.q_lens[s], q.kv_lens[s], h, t);
                        return GateVerdict::fail(
                            fmt::format("{} sees no key but gave LSE {:.6g} and O[{}] = {:.6g} (must be -inf and 0)",
                                        where, lse, bad < 0 ? 0 : bad, bad < 0 ? 0.0f : obs.o[oi + bad]),
                            k == 0 ? std::optional<ProbeRequest>(ProbeRequest{s, h, t}) : std::nullopt);
                    }
                }
            }
    }
    return GateVerdict::pass(fmt::format("{} fully masked rows gave O = 0, LSE = -inf{}", checked, skipped));
}

} // namespace attncheck::gates
