// Kernel family decode: kernels/decode/decode.cu (CUDA) and kernels/decode/decode_cpu.cpp
// (CPU twin). What both halves agree on -- the support rule and the mutants
// carried -- is shared with the other decode family in
// kernels/common/decode_rules.hpp.
#pragma once

#include "kernels/common/decode_rules.hpp"
#include "kernels/families.hpp"
