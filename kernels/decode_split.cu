// PLACEHOLDER until the family is written.
#include "kernels/decode_split.hpp"

namespace attncheck::kernels {

Observation decode_split_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode_split: not implemented yet");
}

}  // namespace attncheck::kernels
