// Kernel family flash_prefill: see kernels/flash_prefill.cu (CUDA) and kernels/flash_prefill_cpu.cpp (CPU twin).
#pragma once

#include "kernels/family.hpp"

namespace attncheck::kernels {
ATTNCHECK_DECLARE_FAMILY(flash_prefill)
}  // namespace attncheck::kernels
