// What the two decode families (decode, decode_gqa) accept: one rule, read by
// each family's CPU twin (its <family>_unsupported) and by its CUDA host code
// (before launching); and the one precision profile both declare. Header-only, so the CUDA library needs nothing from
// the engine library that holds the CPU twins.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/case/dtype.hpp"
#include "engine/targets/mutant.hpp"
#include "engine/targets/target.hpp"
#include "kernels/families.hpp"

namespace attncheck::kernels {

// Largest head_dim of both decode kernels (their shared-memory q row and the
// channel-to-thread maps are sized for it; each kernel static_asserts its map).
inline constexpr int kDecodeMaxHeadDim = 256;

inline std::string decode_family_unsupported(Family fam, const char* family, const std::vector<int>& q_lens,
                                             int head_dim, DType dtype, Backend b, Mutant m) {
    for (size_t i = 0; i < q_lens.size(); ++i)
        if (q_lens[i] > 1)
            return fmt::format("{}: one query token per sequence (sequence {} has q_len {})", family, i, q_lens[i]);
    if (head_dim > kDecodeMaxHeadDim)
        return fmt::format("{}: head_dim {} above the supported {}", family, head_dim, kDecodeMaxHeadDim);
    if (std::string why = mutant_unsupported(family, features_of(fam), m, b); !why.empty()) return why;
    // CUDA mutants are instantiated for fp16 only, to keep the build small.
    if (b == Backend::cuda && m != Mutant::none && dtype != DType::f16)
        return fmt::format("{}: mutant builds are fp16 only (case is {})", family, dtype_name(dtype));
    return {};
}

// How both decode families round, on both backends: fp32 everywhere (dot
// products, sums, P.V; decode_gqa holds its K/V tiles as fp32 in shared
// memory), S and P never stored in T, O stored in T, std::exp on the CPU and
// expf (not __expf) on CUDA, both within 2 ulps; one online-softmax step per
// kv_tile keys, no splits.
inline PrecisionProfile decode_family_profile(const Case& c, int kv_tile) {
    PrecisionProfile p;
    p.input = c.dtype;
    p.u_acc = 0x1p-24;
    p.scores_stored = false;
    p.probs_stored = false;
    p.store = DType::f32;
    p.output = c.dtype;
    p.exp_ulps = 2.0;
    p.kv_tile = kv_tile;
    p.uses_splits = false;
    return p;
}

} // namespace attncheck::kernels
