// PLACEHOLDER until the family is written: rejects every case.
#include "kernels/decode_gqa.hpp"

namespace attncheck::kernels {

std::string decode_gqa_unsupported(const Case&, Backend, Mutant) { return "decode_gqa: not implemented yet"; }
PrecisionProfile decode_gqa_profile(const Case& c, Backend) {
    PrecisionProfile p;
    p.input = c.dtype;
    return p;
}
Observation decode_gqa_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("decode_gqa: not implemented yet");
}

}  // namespace attncheck::kernels
