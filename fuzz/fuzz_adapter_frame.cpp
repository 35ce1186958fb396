// libFuzzer target: arbitrary bytes as a message of the external adapter
// protocol (docs/adapter-protocol.md), as attncheck reads them from an
// adapter's stdout. Reading must accept a well-formed message or throw
// std::runtime_error with a message -- never crash or read past the input --
// and an accepted message must survive writing and reading back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "properties/campaign/adapter_frame.hpp"

using namespace attncheck;

namespace {

Frame read_from(const std::string& bytes) {
    std::size_t at = 0;
    return decode_frame([&](char* buf, std::size_t n) {
        if (n > bytes.size() - at) throw std::runtime_error("the adapter closed its output");
        std::memcpy(buf, bytes.data() + at, n);
        at += n;
    });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    Frame f;
    try {
        f = read_from(bytes);
    } catch (const std::runtime_error&) {
        return 0; // rejected with a message: fine
    }
    Frame back;
    try {
        back = read_from(encode_frame(f));
    } catch (const std::runtime_error& e) {
        std::fprintf(stderr, "an accepted message does not re-read once written: %s\n", e.what());
        std::abort();
    }
    if (back.meta != f.meta || back.tensors.size() != f.tensors.size()) std::abort();
    for (const auto& [name, t] : f.tensors) {
        const FrameTensor& u = back.tensors.at(name);
        // Bits, NaN payloads included: F32 travels as it is.
        if (t.shape != u.shape || t.data.size() != u.data.size() ||
            (!t.data.empty() && std::memcmp(t.data.data(), u.data.data(), t.data.size() * sizeof(float)) != 0))
            std::abort();
    }
    return 0;
}
