// The end of every CPU twin's run: its O and LSE live in guarded host
// buffers (poisoned, guard bands around them, engine/targets/guarded_buffer.hpp);
// the bands are checked before anything is handed over, so a write out of
// bounds throws instead of reaching a gate as plausible numbers.
#pragma once

#include <optional>
#include <utility>

#include "engine/targets/guarded_buffer.hpp"
#include "engine/targets/observation.hpp"

namespace attncheck::kernels {

inline Observation guarded_observation(const GuardedHostBuffer& o, const GuardedHostBuffer& lse,
                                       std::optional<ProbeTrace> trace) {
    o.check_guards();
    lse.check_guards();
    Observation obs;
    obs.o = o.payload();
    obs.lse = lse.payload();
    obs.probe = std::move(trace);
    return obs;
}

} // namespace attncheck::kernels
