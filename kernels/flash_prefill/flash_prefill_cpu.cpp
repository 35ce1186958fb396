// CPU twin of the flash_prefill family (kernels/flash_prefill/flash_prefill.cu).
//
// Same structure as the CUDA kernel, row by row: query rows are grouped in
// blocks of kBlockM; every row of a block visits the same key tiles
// [t_lo, t_hi) of block_n(head_dim) keys (flash::block_tile_range), in
// increasing order, including tiles in which it sees no key (the CUDA block
// computes those rows too: rescale by exactly 1, probabilities 0). Per tile:
// fp32 scores q.k (keys past kv_len score 0, as the zero-filled shared-memory
// rows do), scaled into log2 units, masked; running max updated, the
// accumulator and row sum rescaled by exp2(old shift - new shift);
// probabilities exp2(s2 - shift) added to the row sum in fp32, rounded to T
// (fp16/bf16; fp32 keeps them) and multiplied into V. At the end O = acc / l,
// rounded to T; LSE = shift * ln 2 + log(l) in fp32; a row whose running max
// stayed -inf gives O = 0, LSE = -inf.
//
// What it does not mirror bit for bit: the order of the fp32 sums inside the
// tensor-core mma (Q.K^T and P.V) and the GPU's split of the row sum over the
// four (fp32 path: eight) threads that share a row. Both stay inside the
// declared profile.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/targets/guarded_buffer.hpp"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/host_observation.hpp"
#include "kernels/common/probe_trace.hpp"
#include "kernels/flash_prefill/flash_prefill.hpp"

namespace attncheck::kernels {

namespace {

using flash::kBlockM;
using flash::kLn2;
using flash::kLog2e;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <Mutant M>
Observation run_cpu(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) {
    const int D = p.head_dim;
    const int BN = flash::block_n(D);
    const AttnShape sh = attn_shape_of(p);
    // P is rounded to T before P.V for fp16/bf16 (the mma's A operand); the
    // fp32 path keeps it in fp32.
    const DType pstore = p.dtype;
    const float scale_nat = score_scale<M>(sh.scale);
    const float scale_log2 = scale_nat * kLog2e;
    const float masked_nat = masked_score<M>();
    const float masked_log2 = masked_nat * kLog2e;

    GuardedHostBuffer o(p.q.size(), "O");
    GuardedHostBuffer lse(static_cast<size_t>(p.total_q()) * p.n_q_heads, "LSE");

    check_probe_request(p, probe, "flash_prefill_cpu");
    // Keys in tiles the row's block never visits are never scored: raw and
    // scaled stay NaN there (as in the CUDA probe), masked -inf.
    std::optional<ProbeTrace> trace;
    if (probe) trace = empty_probe_trace(p, *probe);

    std::vector<float> qv(D), acc(D), s2(BN);
    for (int b = 0; b < p.batch(); ++b) {
        const int q_len = p.q_lens[b], kv_len = p.kv_lens[b];
        for (int h = 0; h < p.n_q_heads; ++h) {
            const int kvh = kv_head_of<M>(sh, h);
            const int vh = v_head_of<M>(sh, kvh);
            for (int i0 = 0; i0 < q_len; i0 += kBlockM) {
                const int i_end = std::min(q_len, i0 + kBlockM);
                int t_lo, t_hi;
                flash::block_tile_range<M>(sh, q_len, kv_len, i0, i_end, BN, t_lo, t_hi);
                for (int i = i0; i < i_end; ++i) {
                    const bool probed = trace && probe->seq == b && probe->head == h && probe->token == i;
                    const int pos = query_position<M>(q_len, kv_len, i);
                    int first_vis = 0;
                    if constexpr (M == Mutant::normalizer_drops_key) {
                        int lo, hi;
                        key_range<M>(sh, kv_len, pos, lo, hi);
                        first_vis = lo < hi ? lo : -1;
                    }
                    const float* q = &p.q[p.q_index(b, i, h)];
                    for (int c = 0; c < D; ++c) qv[c] = q_loaded<M>(q[c], c);
                    float m = kNegInf, l = 0.0f;
                    std::fill(acc.begin(), acc.end(), 0.0f);
                    for (int n = t_lo; n < t_hi; ++n) {
                        const int j0 = n * BN;
                        // Scores of the tile, in log2 units, masked.
                        float tmax = kNegInf;
                        for (int kk = 0; kk < BN; ++kk) {
                            const int j = j0 + kk;
                            float raw = 0.0f; // zero-filled K row past kv_len
                            if (j < kv_len) {
                                const float* k = &p.k[p.kv_index(b, j, kvh)];
                                for (int c = 0; c < D; ++c) raw += qv[c] * k[c];
                            }
                            const bool vis = j < kv_len && key_visible<M>(sh, pos, j);
                            s2[kk] = vis ? raw * scale_log2 : masked_log2;
                            tmax = std::max(tmax, s2[kk]); // NaN scores are ignored, as fmaxf does
                            if (probed && j < kv_len) {
                                trace->raw[j] = raw;
                                trace->scaled[j] = raw * scale_nat;
                                trace->masked[j] = vis ? raw * scale_nat : masked_nat;
                            }
                        }
                        // Online softmax step.
                        const float m_new = std::max(m, tmax);
                        float shift, resc;
                        if (m_new == kNegInf) { // nothing visible yet: acc and l are 0
                            shift = 0.0f;
                            resc = 1.0f;
                        } else {
                            shift = softmax_shift<M>(m_new);
                            resc = std::exp2(softmax_shift<M>(m) - shift); // exp2(-inf) = 0 on the first tile
                        }
                        m = m_new;
                        l *= resc;
                        if constexpr (M != Mutant::online_no_rescale)
                            for (int c = 0; c < D; ++c) acc[c] *= resc;
                        for (int kk = 0; kk < BN; ++kk) {
                            const int j = j0 + kk;
                            const float e = std::exp2(s2[kk] - shift);
                            if (counts_in_normalizer<M>(j, first_vis)) l = accumulate<M>(l, e);
                            if (j >= kv_len) continue; // zero-filled V row: adds exactly 0
                            const float pt = round_to(pstore, e);
                            const float* v = &p.v[p.kv_index(b, j, vh)];
                            for (int c = 0; c < D; ++c) acc[c] += pt * v[c];
                        }
                        if constexpr (M == Mutant::fp16_accumulation)
                            for (int c = 0; c < D; ++c) acc[c] = accumulate<M>(acc[c], 0.0f);
                        if (probed) {
                            trace->tile_max.push_back(m * kLn2);
                            trace->tile_sum.push_back(l);
                        }
                    }
                    // Final normalization. A row is empty when its running
                    // max never left -inf (the finite sentinel defeats this).
                    const bool empty = m == kNegInf;
                    float* orow = o.data() + p.o_index(b, i, h);
                    for (int c = 0; c < D; ++c) orow[c] = empty ? 0.0f : round_to(p.dtype, acc[c] / l);
                    const float shift = empty ? 0.0f : softmax_shift<M>(m);
                    lse.data()[p.lse_index(b, i, h)] = empty ? kNegInf : shift * kLn2 + std::log(l);
                    if (probed) {
                        // The kernel never forms normalized P (it normalizes O
                        // at the end): exps and p are reconstructed here from
                        // masked, the final row max and the final row sum.
                        // Recomputed in the kernel's log2 units from raw,
                        // so that exps are the very values the kernel summed
                        // (up to the rescales of earlier tiles); keys in
                        // tiles never visited keep exps = p = 0.
                        trace->row_max = empty ? kNegInf : m * kLn2;
                        trace->row_sum = l;
                        trace->max_exp = 0.0f;
                        if (!empty) {
                            const int j_end = std::min(kv_len, t_hi * BN);
                            for (int j = t_lo * BN; j < j_end; ++j) {
                                const bool vis = key_visible<M>(sh, pos, j);
                                const float e = std::exp2((vis ? trace->raw[j] * scale_log2 : masked_log2) - shift);
                                trace->exps[j] = e;
                                trace->p[j] = e / l;
                                trace->max_exp = std::max(trace->max_exp, e);
                            }
                        }
                        for (int c = 0; c < D; ++c) trace->o[c] = orow[c];
                    }
                }
            }
        }
    }
    return guarded_observation(o, lse, std::move(trace));
}

} // namespace

std::string flash_prefill_unsupported(const Case& c, Backend b, Mutant m) {
    if (!flash::head_dim_supported(c.head_dim))
        return "flash_prefill: head_dim " + std::to_string(c.head_dim) +
               " has no kernel (supported: 64, 80, 96, 128, 256)";
    if (std::string why = mutant_unsupported("flash_prefill", features_of(Family::flash_prefill), m, b); !why.empty())
        return why;
    if (b == Backend::cuda && m != Mutant::none && !flash::cuda_mutant_built(c.dtype, c.head_dim))
        return "flash_prefill: mutant builds are fp16 only, head_dim 64";
    return {};
}

// fp16/bf16: P rounded to T before P.V (the mma's A operand), O stored in T.
// CUDA: tensor-core accumulation (Q.K^T and P.V) may truncate: u_acc 2^-23;
// the fp32 path runs on CUDA cores (FFMA): 2^-24. exp2f with log2 e folded
// into the scale: 4 ulps declared (CUDA documents 2 for exp2f); the CPU twin
// uses std::exp2: 2. The online softmax steps over block_n(head_dim) keys.
PrecisionProfile flash_prefill_profile(const Case& c, Backend b) {
    PrecisionProfile p;
    p.input = c.dtype;
    p.output = c.dtype;
    const bool low = c.dtype != DType::f32;
    p.probs_stored = low;
    p.store = c.dtype;
    p.scores_stored = false;
    p.u_acc = (b == Backend::cuda && low) ? 0x1p-23 : 0x1p-24;
    p.exp_ulps = b == Backend::cuda ? 4.0 : 2.0;
    p.kv_tile = flash::block_n(c.head_dim);
    p.uses_splits = false;
    return p;
}

Observation flash_prefill_cpu(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (!flash::head_dim_supported(p.head_dim))
        throw UnsupportedCase("flash_prefill_cpu: head_dim " + std::to_string(p.head_dim) + " not supported");
    return dispatch_mutant<&carries_cpu<Family::flash_prefill>>(
        m, "flash_prefill_cpu", [&](auto mc) { return run_cpu<decltype(mc)::value>(p, probe); });
}

} // namespace attncheck::kernels
