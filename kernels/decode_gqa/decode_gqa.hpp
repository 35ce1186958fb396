// Kernel family decode_gqa: kernels/decode_gqa/decode_gqa.cu (CUDA) and kernels/decode_gqa/decode_gqa_cpu.cpp
// (CPU twin). What both halves agree on -- the support rule and the mutants
// carried -- is shared with the other decode family in
// kernels/common/decode_rules.hpp.
#pragma once

#include "kernels/common/decode_rules.hpp"
#include "kernels/families.hpp"
