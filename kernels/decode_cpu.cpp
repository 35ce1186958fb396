// PLACEHOLDER until the family is written: rejects every case.
#include "kernels/decode.hpp"

namespace attncheck::kernels {

std::string decode_unsupported(const Case&, Backend, Mutant) { return "decode: not implemented yet"; }
PrecisionProfile decode_profile(const Case& c, Backend) {
    PrecisionProfile p;
    p.input = c.dtype;
    return p;
}
Observation decode_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode: not implemented yet");
}

}  // namespace attncheck::kernels
