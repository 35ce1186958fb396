// The probe of a single-pass decode kernel (decode, decode_gqa): one query
// token per sequence, its keys walked in tiles of `tile` keys, aligned to
// key 0, that cover the row's key range. Sizes the per-tile slots from that
// range before the launch and, after it, fills in the stages such a kernel
// never forms (exps and P: it rescales running sums and normalizes O once).
#pragma once

#include <algorithm>
#include <optional>

#include "kernels/common/attention_common.hpp"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/probe_trace.hpp"

namespace attncheck::kernels {

template <Mutant M>
class DecodeProbe {
public:
    DecodeProbe(const AttentionProblem& p, const AttnShape& s, const std::optional<ProbeRequest>& req, int tile) {
        if (!req) return;
        const int kv_len = p.kv_lens[req->seq];
        int lo, hi, t_begin, t_end;
        key_range<M>(s, kv_len, query_position<M>(1, kv_len, 0), lo, hi);
        covering_tiles(lo, hi, tile, t_begin, t_end);
        used_tiles_ = t_end - t_begin;
        probe_.emplace(p, *req, std::max(used_tiles_, 1), 0);
        view_ = probe_->view();
    }
    // Inactive unless a probe was requested.
    const DeviceProbeView& view() const { return view_; }
    // After the run (dp.download() has synchronized): the probed row's trace.
    void finish(Observation& obs) const {
        if (!probe_) return;
        obs.probe = probe_->download(used_tiles_, 0);
        reconstruct_probabilities(*obs.probe, softmax_shift<M>(obs.probe->row_max));
    }

private:
    std::optional<DeviceProbe> probe_;
    DeviceProbeView view_;
    int used_tiles_ = 0;
};

} // namespace attncheck::kernels
