// What a target can run, found by asking it: its unsupported() answers for a
// handful of probe shapes. Generators use this to produce cases the target
// accepts (a decode kernel gets one query per sequence, a flash kernel its
// head dims, a CUDA mutant build its one dtype) instead of discarding most
// of what they draw. Any target -- a family, a mutant build, an adapter --
// is described the same way, with no table to keep in sync.
#pragma once

#include <map>
#include <vector>

#include "engine/targets/target.hpp"

namespace attncheck {

struct Capabilities {
    bool decode_only = false;                    // at most one query per sequence
    bool paged_kv = false;                       // reads a paged KV cache (Case.page_size > 0)
    std::map<DType, std::vector<int>> head_dims; // per supported dtype, ascending
    std::vector<DType> dtypes;                   // f32, f16, bf16 order, supported only
    bool empty() const { return dtypes.empty(); }
};

// Head dims tried: small and odd ones, the usual ones, and the tile edges
// around them.
const std::vector<int>& candidate_head_dims();

Capabilities probe_capabilities(const Target& t);

} // namespace attncheck
