// libFuzzer target: arbitrary bytes as a model case file (model/model_case.hpp).
// The reader must accept a valid case or throw ModelCaseError / ConfigError
// with a message -- never crash, never convert a value that does not fit --
// and what it accepts must survive writing and reading back unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "fuzz/fuzz_verdict.hpp"
#include "model/model_case.hpp"

using namespace attncheck;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto read_case = [](const std::string& text) {
        return fuzz::accepted<ModelCaseError, ConfigError>([&] { return model_case_from_json(text); });
    };
    const std::optional<ModelCase> read = read_case(std::string(reinterpret_cast<const char*>(data), size));
    if (!read) return 0;
    const std::string once = model_case_to_json(*read);
    const std::optional<ModelCase> back = read_case(once);
    if (!back || model_case_to_json(*back) != once) {
        std::fprintf(stderr, "an accepted model case does not read back the same:\n%s\n", once.c_str());
        std::abort();
    }
    return 0;
}
