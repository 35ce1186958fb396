// PLACEHOLDER until the family is written.
#include "kernels/flash_prefill.hpp"

namespace attncheck::kernels {

Observation flash_prefill_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("flash_prefill: not implemented yet");
}

}  // namespace attncheck::kernels
