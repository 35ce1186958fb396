// PLACEHOLDER until the family is written.
#include "kernels/decode.hpp"

namespace attncheck::kernels {

Observation decode_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode: not implemented yet");
}

}  // namespace attncheck::kernels
