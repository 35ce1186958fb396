// Kernel family decode_gqa: see kernels/decode_gqa.cu (CUDA) and kernels/decode_gqa_cpu.cpp (CPU twin).
#pragma once

#include "kernels/family.hpp"

namespace attncheck::kernels {
ATTNCHECK_DECLARE_FAMILY(decode_gqa)
}  // namespace attncheck::kernels
