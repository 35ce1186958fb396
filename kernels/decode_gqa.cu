// PLACEHOLDER until the family is written.
#include "kernels/decode_gqa.hpp"

namespace attncheck::kernels {

Observation decode_gqa_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode_gqa: not implemented yet");
}

}  // namespace attncheck::kernels
