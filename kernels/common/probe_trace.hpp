// Host side of a family's probe (docs/kernel-families.md, "Probes"): the
// trace a probed row starts from, and the stages a variant that never forms
// them reconstructs. Header-only, for the CPU twins and the CUDA host code
// alike.
#pragma once

#include <cmath>
#include <limits>

#include "engine/case/problem.hpp"
#include "engine/targets/observation.hpp"
#include "kernels/common/attention_common.hpp"

namespace attncheck::kernels {

// As the device probe slots start (DeviceProbe): stages a variant never
// computes for a key stay NaN (raw, scaled) or -inf (masked); exps and p are
// 0 unless computed or reconstructed; O is 0 until the row is written.
inline ProbeTrace empty_probe_trace(const AttentionProblem& p, const ProbeRequest& req) {
    const int n = p.kv_lens[req.seq];
    ProbeTrace t;
    t.where = req;
    t.raw.assign(n, std::numeric_limits<float>::quiet_NaN());
    t.scaled.assign(n, std::numeric_limits<float>::quiet_NaN());
    t.masked.assign(n, -std::numeric_limits<float>::infinity());
    t.exps.assign(n, 0.0f);
    t.p.assign(n, 0.0f);
    t.o.assign(p.head_dim, 0.0f);
    return t;
}

// For a single-pass online softmax that never forms exp(s_j - final max)
// nor P (it rescales running sums and normalizes O once at the end): both
// are reconstructed from the recorded masked scores, the final shift and the
// final row sum, the same way for the CUDA kernel and its CPU twin.
inline void reconstruct_probabilities(ProbeTrace& t, float shift) {
    t.max_exp = 0.0f;
    if (t.row_max == -INFINITY) return; // empty row: exps and p stay 0
    for (size_t j = 0; j < t.masked.size(); ++j) {
        if (t.masked[j] == -INFINITY) continue;
        t.exps[j] = std::exp(t.masked[j] - shift);
        t.max_exp = nan_max(t.max_exp, t.exps[j]);
        t.p[j] = t.exps[j] / t.row_sum;
    }
}

} // namespace attncheck::kernels
