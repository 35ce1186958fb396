// Kernel family standard_path, CPU twin of kernels/standard_path/standard_path.cu.
//
// The same three stages, with plain loops in place of cuBLAS:
//   1. S = Q.K^T per (sequence, q head) in fp32: products and sums in fp32,
//      as cuBLAS with CUBLAS_COMPUTE_32F (which fuses them; both are inside
//      the error model's gamma_{d+2}); S stays fp32, never rounded to T.
//   2. the softmax of each row, exactly as the CUDA kernel does it: scale,
//      mask (masked keys take masked_score), row max, expf(x - max), row sum
//      in the CUDA block's reduction order (128 per-thread partials, a warp
//      butterfly, then the 4 warp sums in order), P = e / l rounded to T,
//      LSE = max + log(l). A row whose max is -inf is empty: P = 0, LSE = -inf.
//   3. O = P.V in fp32 over every key of the sequence, then rounded to T.
// Scratch S and P are GuardedHostBuffers (NaN-poisoned, guard bands checked)
// per chunk of the plan in standard_path.hpp, as the CUDA version.
// Limits: see standard_path.hpp (head_dim <= 256; causal cases with a
// non-finite V are rejected because the dense P.V GEMM would turn
// 0 * inf into NaN).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/targets/guarded_buffer.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/attention_common.hpp"
#include "kernels/common/host_observation.hpp"
#include "kernels/standard_path/standard_path.hpp"

namespace attncheck::kernels {

namespace {

using namespace standard_path_detail;

bool case_v_nonfinite(const Case& c) {
    for (const SpecialValue& s : c.data.specials)
        if (s.tensor == TensorId::v && !std::isfinite(s.value)) return true;
    if (c.values)
        for (double x : c.values->v)
            if (!std::isfinite(x)) return true;
    return false;
}

bool problem_v_nonfinite(const AttentionProblem& p) {
    for (float x : p.v)
        if (!std::isfinite(x)) return true;
    return false;
}

// The CUDA block reduction (standard_path.cu, block_reduce) replayed on the
// per-thread partials: within each warp a butterfly over xor offsets 16..1
// (every lane ends with the same value), then warp 0's, 1's, ... sums
// combined in order.
template <class Op>
float block_reduce(const float (&part)[kSoftmaxThreads], Op op) {
    float lanes[kSoftmaxThreads], next[kSoftmaxThreads];
    for (int t = 0; t < kSoftmaxThreads; ++t) lanes[t] = part[t];
    for (int off = kWarpSize / 2; off > 0; off >>= 1) {
        for (int t = 0; t < kSoftmaxThreads; ++t) {
            next[t] = op(lanes[t], lanes[t ^ off]); // __shfl_xor_sync(.., off): off < 32 stays in the warp
        }
        for (int t = 0; t < kSoftmaxThreads; ++t) lanes[t] = next[t];
    }
    float r = lanes[0];
    for (int w = 1; w < kSoftmaxWarps; ++w) r = op(r, lanes[w * kWarpSize]);
    return r;
}

// Stage 2 for one row: reads S (fp32), writes P (rounded to T) and LSE.
template <Mutant M>
void softmax_row(const AttnShape& sh, DType dt, int q_len, int kv_len, int i, const float* srow, float* prow,
                 float* lse_out, ProbeTrace* tr) {
    const int pos = query_position<M>(q_len, kv_len, i);
    const float sc = score_scale<M>(sh.scale);
    auto masked_at = [&](int j, float& s) {
        s = srow[j] * sc;
        return key_visible<M>(sh, pos, j) ? s : masked_score<M>();
    };
    int first_visible = 0;
    if constexpr (M == Mutant::normalizer_drops_key) {
        int lo, hi;
        key_range<M>(sh, kv_len, pos, lo, hi);
        first_visible = -1;
        for (int j = lo; j < kv_len; ++j)
            if (key_visible<M>(sh, pos, j)) {
                first_visible = j;
                break;
            }
    }
    if (tr) {
        tr->raw.assign(kv_len, 0.0f);
        tr->scaled.assign(kv_len, 0.0f);
        tr->masked.assign(kv_len, 0.0f);
        tr->exps.assign(kv_len, 0.0f);
        tr->p.assign(kv_len, 0.0f);
    }
    // Row max (order-independent: a plain loop gives what the tree gives).
    float mx = -INFINITY;
    for (int j = 0; j < kv_len; ++j) {
        float s;
        const float x = masked_at(j, s);
        mx = std::fmax(mx, x);
        if (tr) {
            tr->raw[j] = srow[j];
            tr->scaled[j] = s;
            tr->masked[j] = x;
        }
    }
    if (mx == -INFINITY) { // no visible key (the finite sentinel mutant never gets here)
        for (int j = 0; j < kv_len; ++j) prow[j] = 0.0f;
        *lse_out = -INFINITY;
        if (tr) {
            tr->row_max = -INFINITY;
            tr->max_exp = 0.0f;
            tr->row_sum = 0.0f;
        }
        return;
    }
    const float shift = softmax_shift<M>(mx);
    float part[kSoftmaxThreads] = {};
    float emax = 0.0f;
    for (int j = 0; j < kv_len; ++j) {
        float s;
        const float e = std::exp(masked_at(j, s) - shift);
        float& acc = part[j % kSoftmaxThreads];
        if (counts_in_normalizer<M>(j, first_visible)) acc = accumulate<M>(acc, e);
        if (tr) {
            tr->exps[j] = e;
            emax = std::fmax(emax, e);
        }
    }
    const float l = block_reduce(part, [](float a, float b) { return accumulate<M>(a, b); });
    for (int j = 0; j < kv_len; ++j) {
        float s;
        const float e = std::exp(masked_at(j, s) - shift);
        prow[j] = round_to(dt, e / l);
        if (tr) tr->p[j] = prow[j];
    }
    *lse_out = shift + std::log(l);
    if (tr) {
        tr->row_max = mx;
        tr->max_exp = emax;
        tr->row_sum = l;
    }
}

template <Mutant M>
Observation run_cpu(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const int Hq = p.n_q_heads, d = p.head_dim;
    const AttnShape sh = attn_shape_of(p);
    const DType dt = p.dtype;
    GuardedHostBuffer o(p.q.size(), "standard_path.O");
    GuardedHostBuffer lse(static_cast<size_t>(p.total_q()) * Hq, "standard_path.LSE");
    std::optional<ProbeTrace> trace;
    if (probe) {
        trace.emplace();
        trace->where = *probe;
    }
    auto probed = [&](int b, int h, int i) {
        return probe && probe->seq == b && probe->head == h && probe->token == i;
    };

    for (int b = 0; b < p.batch(); ++b) {
        const int q_len = p.q_lens[b], kv_len = p.kv_lens[b];
        if (q_len == 0) continue;
        if (kv_len == 0) { // empty cache: every row is empty
            for (int i = 0; i < q_len; ++i)
                for (int h = 0; h < Hq; ++h) {
                    float* orow = o.data() + p.o_index(b, i, h);
                    for (int c = 0; c < d; ++c) orow[c] = 0.0f;
                    lse.data()[p.lse_index(b, i, h)] = -INFINITY;
                    if (probed(b, h, i)) {
                        trace->row_max = -INFINITY;
                        trace->max_exp = 0.0f;
                        trace->row_sum = 0.0f;
                    }
                }
            continue;
        }
        const SeqPlan pl = plan_sequence(q_len, kv_len, Hq);
        for (int h0 = 0; h0 < Hq; h0 += pl.heads) {
            const int hc = std::min(pl.heads, Hq - h0);
            for (int r0 = 0; r0 < q_len; r0 += pl.rows) {
                const int rc = std::min(pl.rows, q_len - r0);
                GuardedHostBuffer S(static_cast<size_t>(hc * pl.stride), "standard_path.S");
                GuardedHostBuffer P(static_cast<size_t>(hc * pl.stride), "standard_path.P");
                for (int hl = 0; hl < hc; ++hl) {
                    const int h = h0 + hl;
                    const int kvh = kv_head_of<M>(sh, h);
                    const int vh = v_head_of<M>(sh, kvh);
                    float* Sh = S.data() + hl * pl.stride;
                    float* Ph = P.data() + hl * pl.stride;
                    // 1. S = Q.K^T (fp32)
                    for (int r = 0; r < rc; ++r) {
                        const float* q = &p.q[p.q_index(b, r0 + r, h)];
                        for (int j = 0; j < kv_len; ++j) {
                            const float* k = &p.k[p.kv_index(b, j, kvh)];
                            float acc = 0.0f;
                            for (int c = 0; c < d; ++c) acc += q_loaded<M>(q[c], c) * k[c];
                            Sh[static_cast<long long>(r) * kv_len + j] = acc;
                        }
                    }
                    // 2. softmax -> P (in T), LSE
                    for (int r = 0; r < rc; ++r) {
                        const int i = r0 + r;
                        softmax_row<M>(sh, dt, q_len, kv_len, i, Sh + static_cast<long long>(r) * kv_len,
                                       Ph + static_cast<long long>(r) * kv_len, &lse.data()[p.lse_index(b, i, h)],
                                       probed(b, h, i) ? &*trace : nullptr);
                    }
                    // 3. O = P.V over every key (fp32, fp16 for the mutant), rounded to T
                    for (int r = 0; r < rc; ++r) {
                        const float* prow = Ph + static_cast<long long>(r) * kv_len;
                        float* orow = o.data() + p.o_index(b, r0 + r, h);
                        for (int c = 0; c < d; ++c) {
                            float acc = 0.0f;
                            for (int j = 0; j < kv_len; ++j)
                                acc = accumulate<M>(acc, prow[j] * p.v[p.kv_index(b, j, vh) + c]);
                            orow[c] = round_to(dt, acc);
                        }
                    }
                }
                S.check_guards();
                P.check_guards();
            }
        }
    }
    Observation obs = guarded_observation(o, lse, std::move(trace));
    if (obs.probe) {
        const long long oi = p.o_index(probe->seq, probe->token, probe->head);
        obs.probe->o.assign(obs.o.begin() + oi, obs.o.begin() + oi + d);
    }
    return obs;
}

} // namespace

std::string standard_path_unsupported(const Case& c, Backend b, Mutant m) {
    return unsupported_reason(c.head_dim, c.dtype, c.causal, case_v_nonfinite(c), b, m);
}

// S is fp32 (never stored in T: scores_stored = false); P is stored in T
// before the P.V GEMM for fp16/bf16 (fp32 P for fp32 inputs: nothing is
// rounded there); O in T. expf: 2 ulps. One pass over each row: no tiles,
// no splits. On CUDA, fp16/bf16 GEMMs run on tensor cores, whose fp32
// accumulation may truncate: u_acc = 2^-23 there; fp32 GEMMs are pedantic
// fp32 (no TF32) and the CPU twin rounds every add: 2^-24.
PrecisionProfile standard_path_profile(const Case& c, Backend b) {
    PrecisionProfile p;
    p.input = c.dtype;
    p.u_acc = (b == Backend::cuda && c.dtype != DType::f32) ? 0x1p-23 : 0x1p-24;
    p.scores_stored = false;
    p.probs_stored = c.dtype != DType::f32;
    p.store = c.dtype;
    p.output = c.dtype;
    p.exp_ulps = 2.0;
    p.kv_tile = 0;
    p.uses_splits = false;
    return p;
}

Observation standard_path_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    const std::string why =
        unsupported_reason(p.head_dim, p.dtype, p.causal, p.causal && problem_v_nonfinite(p), Backend::cpu, m);
    if (!why.empty()) throw UnsupportedCase(why);
    check_probe_request(p, probe, "standard_path");
    return dispatch_mutant<&carries_cpu<Family::standard_path>>(
        m, "standard_path", [&](auto mc) { return run_cpu<decltype(mc)::value>(p, probe); });
}

} // namespace attncheck::kernels
