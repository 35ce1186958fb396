// The target registry: every kernel family of kernels/families.hpp as a
// Target, with its CPU twin and (in CUDA builds) its CUDA version.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"

namespace attncheck {

// Every target of a backend, built with the given mutant. A CUDA mutant is
// instantiated only for the dtypes and head dims its tests need; the
// target's unsupported() says so for the rest.
std::vector<std::unique_ptr<Target>> make_targets(Backend b, Mutant m = Mutant::none);
std::unique_ptr<Target> make_target(const std::string& name, Backend b, Mutant m = Mutant::none);
std::vector<std::string> family_names();
// The named targets (every target when `names` is empty); throws
// std::invalid_argument for a name that is not a family.
std::vector<std::unique_ptr<Target>> make_targets_named(Backend b, Mutant m, const std::vector<std::string>& names);

} // namespace attncheck
