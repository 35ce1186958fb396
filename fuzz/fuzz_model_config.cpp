// libFuzzer target: arbitrary bytes as a Hugging Face config.json. The reader
// must accept a valid configuration or throw ConfigError with a message --
// never crash or accept something validate() refuses -- and what it accepts
// must survive writing and reading back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "fuzz/fuzz_verdict.hpp"
#include "model/model_config.hpp"

using namespace attncheck;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::optional<ModelConfig> read = fuzz::accepted<ConfigError>([&] { return parse_hf_config(text); });
    if (!read) return 0;
    const ModelConfig& c = *read;
    try {
        validate(c);
        const ModelConfig back = parse_hf_config(hf_config_json(c));
        if (hf_config_json(back) != hf_config_json(c)) {
            std::fprintf(stderr, "config changed when written and read back:\n%s\n", hf_config_json(c).c_str());
            std::abort();
        }
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "an accepted config fails validation or does not re-parse: %s\n", e.what());
        std::abort();
    }
    return 0;
}
