// Kernel family standard_path: see kernels/standard_path.cu (CUDA) and kernels/standard_path_cpu.cpp (CPU twin).
#pragma once

#include "kernels/family.hpp"

namespace attncheck::kernels {
ATTNCHECK_DECLARE_FAMILY(standard_path)
}  // namespace attncheck::kernels
