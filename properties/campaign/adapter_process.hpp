// One external adapter process (docs/adapter-protocol.md): started through
// /bin/sh -c, greeted with `hello`, then one request and one answer at a
// time over its stdin and stdout; `bye` when it goes. Both kinds of adapter
// use it: attention targets (external_target.hpp) and models
// (external_model.hpp).
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>

#include "properties/campaign/adapter_frame.hpp"

namespace attncheck {

class AdapterProcess {
public:
    // Starts the command and returns once it has answered hello; throws
    // std::invalid_argument (naming the command) when it does not start or
    // answers anything but capabilities.
    explicit AdapterProcess(std::string command);
    ~AdapterProcess();
    AdapterProcess(const AdapterProcess&) = delete;
    AdapterProcess& operator=(const AdapterProcess&) = delete;

    const std::string& command() const { return command_; }
    // The capabilities JSON text of its hello answer.
    const std::string& capabilities() const { return capabilities_; }
    // That text through parse (parse_capabilities, parse_model_capabilities),
    // its error rethrown as std::invalid_argument naming the command.
    template <class Parse>
    auto capabilities(Parse parse) const -> decltype(parse(std::string())) {
        try {
            return parse(capabilities_);
        } catch (const std::exception& e) {
            throw std::invalid_argument("--external '" + command_ + "': " + e.what());
        }
    }
    // Sends one request and reads its answer; throws std::runtime_error when
    // the adapter is gone or sends a malformed message.
    Frame exchange(const Frame& request);

private:
    std::string command_, capabilities_;
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
};

} // namespace attncheck
