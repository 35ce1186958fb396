#include "engine/targets/target.hpp"

#include <fmt/format.h>

namespace attncheck {

std::string Target::full_name() const {
    std::string s = fmt::format("{}/{}", backend_name(backend()), name());
    if (mutant() != Mutant::none) s += std::string("+") + mutant_name(mutant());
    return s;
}

} // namespace attncheck
