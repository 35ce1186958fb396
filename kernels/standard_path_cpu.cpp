// PLACEHOLDER until the family is written: rejects every case.
#include "kernels/standard_path.hpp"

namespace attncheck::kernels {

std::string standard_path_unsupported(const Case&, Backend, Mutant) { return "standard_path: not implemented yet"; }
PrecisionProfile standard_path_profile(const Case& c, Backend) {
    PrecisionProfile p;
    p.input = c.dtype;
    return p;
}
Observation standard_path_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("standard_path: not implemented yet");
}

}  // namespace attncheck::kernels
