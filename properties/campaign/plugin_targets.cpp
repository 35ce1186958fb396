#include "properties/campaign/plugin_targets.hpp"

#include <dlfcn.h>

#include <map>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "kernels/registry.hpp"
#include "properties/campaign/external_target.hpp"

// The ABI this build speaks (include/attncheck/plugin.hpp defines it too;
// the two must agree, which the static_assert below keeps true).
#include "include/attncheck/plugin.hpp"

namespace attncheck {

namespace {

using MakeTargets = void (*)(std::vector<std::unique_ptr<Target>>*);
using Abi = int (*)();

MakeTargets entry_point(const std::string& path) {
    static std::mutex m;
    static std::map<std::string, MakeTargets> loaded;
    std::lock_guard<std::mutex> lock(m);
    if (auto it = loaded.find(path); it != loaded.end()) return it->second;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) throw std::invalid_argument(fmt::format("--plugin {}: cannot load it: {}", path, dlerror()));
    auto abi = reinterpret_cast<Abi>(dlsym(h, "attncheck_plugin_abi"));
    auto make = reinterpret_cast<MakeTargets>(dlsym(h, "attncheck_plugin_targets"));
    if (!abi || !make)
        throw std::invalid_argument(
            fmt::format("--plugin {}: not an attncheck plugin (no ATTNCHECK_PLUGIN(...) entry point)", path));
    if (abi() != ATTNCHECK_PLUGIN_ABI)
        throw std::invalid_argument(fmt::format("--plugin {}: built for plugin ABI {}, this attncheck speaks {}", path,
                                                abi(), ATTNCHECK_PLUGIN_ABI));
    loaded[path] = make;
    return make;
}

} // namespace

std::vector<std::unique_ptr<Target>> plugin_targets(const std::string& path) {
    std::vector<std::unique_ptr<Target>> out;
    entry_point(path)(&out);
    if (out.empty()) throw std::invalid_argument(fmt::format("--plugin {}: it returned no targets", path));
    for (const auto& t : out)
        if (!t) throw std::invalid_argument(fmt::format("--plugin {}: it returned a null target", path));
    return out;
}

std::vector<std::unique_ptr<Target>> make_run_targets(Backend b, Mutant m, const std::vector<std::string>& names,
                                                      const std::vector<std::string>& plugins,
                                                      const std::vector<std::string>& externals) {
    if (plugins.empty() && externals.empty()) return make_targets_named(b, m, names);
    std::vector<std::unique_ptr<Target>> from_plugins;
    for (const auto& p : plugins)
        for (auto& t : plugin_targets(p)) from_plugins.push_back(std::move(t));
    for (const auto& cmd : externals) from_plugins.push_back(std::make_unique<ExternalTarget>(cmd));
    if (names.empty()) return from_plugins;
    std::vector<std::unique_ptr<Target>> out;
    for (const auto& n : names) {
        bool found = false;
        for (auto& t : from_plugins)
            if (t && t->name() == n) {
                out.push_back(std::move(t));
                found = true;
                break;
            }
        if (!found) {
            auto engine = make_targets_named(b, m, {n}); // throws for a name nothing has
            out.push_back(std::move(engine.front()));
        }
    }
    return out;
}

} // namespace attncheck
