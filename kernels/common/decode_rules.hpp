// What the two decode families (decode, decode_gqa) accept: one rule, read by
// each family's CPU twin (its <family>_unsupported) and by its CUDA host code
// (before launching). Header-only, so the CUDA library needs nothing from the
// engine library that holds the CPU twins.
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

} // namespace attncheck::kernels
