// PLACEHOLDER until the family is written: rejects every case.
#include "kernels/decode_split.hpp"

namespace attncheck::kernels {

std::string decode_split_unsupported(const Case&, Backend, Mutant) { return "decode_split: not implemented yet"; }
PrecisionProfile decode_split_profile(const Case& c, Backend) {
    PrecisionProfile p;
    p.input = c.dtype;
    return p;
}
Observation decode_split_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode_split: not implemented yet");
}

}  // namespace attncheck::kernels
