// PLACEHOLDER until the family is written: rejects every case.
#include "kernels/flash_prefill.hpp"

namespace attncheck::kernels {

std::string flash_prefill_unsupported(const Case&, Backend, Mutant) { return "flash_prefill: not implemented yet"; }
PrecisionProfile flash_prefill_profile(const Case& c, Backend) {
    PrecisionProfile p;
    p.input = c.dtype;
    return p;
}
Observation flash_prefill_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&) {
    throw UnsupportedCase("flash_prefill: not implemented yet");
}

}  // namespace attncheck::kernels
