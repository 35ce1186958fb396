#include "engine/targets/target.hpp"

#include <fmt/format.h>

namespace attncheck {

std::string Target::full_name() const {
    std::string s = fmt::format("{}/{}", backend_name(backend()), name());
    if (mutant() != Mutant::none) s += std::string("+") + mutant_name(mutant());
    return s;
}

std::vector<RunAnswer> Target::run_batch(const std::vector<RunRequest>& runs) {
    std::vector<RunAnswer> out(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
        try {
            out[i].obs = run(*runs[i].problem, runs[i].probe);
        } catch (const UnsupportedCase& e) {
            out[i].unsupported = e.what();
        } catch (const std::exception& e) {
            out[i].error = e.what();
        }
    }
    return out;
}

} // namespace attncheck
