// libFuzzer target: arbitrary bytes as a safetensors image (the model
// loader's parser). It must either accept them or throw ModelFileError with a
// message -- never crash, hang or read out of bounds. What it accepts must
// survive writing and reading back unchanged.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "model/safetensors_loader.hpp"

using namespace attncheck;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    std::map<std::string, SafeTensor> t;
    try {
        t = parse_safetensors(bytes, "fuzz input");
    } catch (const ModelFileError&) {
        return 0; // rejected with a message: fine
    }
    const std::string again = safetensors_image(t);
    std::map<std::string, SafeTensor> back;
    try {
        back = parse_safetensors(again, "rewritten image");
    } catch (const ModelFileError& e) {
        std::fprintf(stderr, "an accepted image does not re-parse once written: %s\n", e.what());
        std::abort();
    }
    if (back.size() != t.size()) std::abort();
    for (const auto& [name, x] : t) {
        const SafeTensor& y = back.at(name);
        bool same = x.dtype == y.dtype && x.shape == y.shape && x.values.size() == y.values.size();
        // Values compared as bits (signed zeros, subnormals), except that a NaN
        // need only stay a NaN: a 16-bit NaN's payload does not survive the
        // float it is held in (found by this target: F16 0xff00).
        for (size_t i = 0; same && i < x.values.size(); ++i)
            same = (std::isnan(x.values[i]) && std::isnan(y.values[i])) ||
                   std::memcmp(&x.values[i], &y.values[i], sizeof(float)) == 0;
        if (!same) {
            std::fprintf(stderr, "tensor %s changed when written and read back\n", name.c_str());
            std::abort();
        }
    }
    return 0;
}
