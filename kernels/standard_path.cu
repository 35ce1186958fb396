// PLACEHOLDER until the family is written.
#include "kernels/standard_path.hpp"

namespace attncheck::kernels {

Observation standard_path_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("standard_path: not implemented yet");
}

}  // namespace attncheck::kernels
