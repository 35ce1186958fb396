// Kernel family decode_split: see kernels/decode_split.cu (CUDA) and kernels/decode_split_cpu.cpp (CPU twin).
#pragma once

#include "kernels/family.hpp"

namespace attncheck::kernels {
ATTNCHECK_DECLARE_FAMILY(decode_split)
}  // namespace attncheck::kernels
