// Loading targets from plugins (include/attncheck/plugin.hpp) and picking a
// run's targets among them and the engine's families.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"

namespace attncheck {

// Fresh targets from the plugin at `path` (loaded once per process, never
// unloaded: its code backs the targets' vtables). Throws
// std::invalid_argument naming the file and what is wrong (not loadable, no
// entry point, another ABI, no targets).
std::vector<std::unique_ptr<Target>> plugin_targets(const std::string& path);

// A run's targets. Without plugins or external adapters: the engine's
// families on backend b (all, or those named). With them: every plugin
// target and one ExternalTarget per adapter command
// (properties/campaign/external_target.hpp), or those named, where a name
// none of them has may be an engine family (to run beside yours). Throws
// std::invalid_argument for a name nothing has.
std::vector<std::unique_ptr<Target>> make_run_targets(Backend b, Mutant m, const std::vector<std::string>& names,
                                                      const std::vector<std::string>& plugins,
                                                      const std::vector<std::string>& externals = {});

} // namespace attncheck
