#include "properties/campaign/adapter_process.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include <fmt/format.h>

#include "properties/campaign/child_process.hpp"

namespace attncheck {

AdapterProcess::AdapterProcess(std::string command) : command_(std::move(command)) {
    // A dead adapter must show as an error on write, not kill attncheck.
    signal(SIGPIPE, SIG_IGN);
    try {
        const PipedChild c = spawn_piped({"/bin/sh", "-c", command_});
        pid_ = c.pid;
        to_ = c.in;
        from_ = c.out;
        Frame hello;
        hello.meta = {{"type", "hello"}, {"protocol", "1"}};
        const Frame caps = exchange(hello);
        if (caps.type() != "capabilities" || !caps.meta.count("capabilities"))
            throw std::runtime_error("answered '" + caps.type() + "' to hello, not capabilities");
        capabilities_ = caps.meta.at("capabilities");
    } catch (const std::exception& e) {
        throw std::invalid_argument(fmt::format("--external '{}': {}", command_, e.what()));
    }
}

AdapterProcess::~AdapterProcess() {
    try {
        Frame bye;
        bye.meta = {{"type", "bye"}};
        write_all(to_, encode_frame(bye), "the adapter");
    } catch (const std::exception&) {
        // already gone
    }
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
}

Frame AdapterProcess::exchange(const Frame& request) {
    write_all(to_, encode_frame(request), "the adapter");
    return decode_frame([this](char* b, std::size_t n) { read_exact(from_, b, n, "the adapter"); });
}

} // namespace attncheck
