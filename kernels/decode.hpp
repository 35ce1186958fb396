// Kernel family decode: see kernels/decode.cu (CUDA) and kernels/decode_cpu.cpp (CPU twin).
#pragma once

#include "kernels/family.hpp"

namespace attncheck::kernels {
ATTNCHECK_DECLARE_FAMILY(decode)
}  // namespace attncheck::kernels
