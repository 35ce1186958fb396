#include "model/checkpoint_index.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/safetensors_loader.hpp"

namespace attncheck {

using nlohmann::json;

namespace {

// A plain file name in the checkpoint's directory, and a safetensors one.
bool plain_shard_name(const std::string& s) {
    const std::string ext = ".safetensors";
    return s.size() > ext.size() && s.compare(s.size() - ext.size(), ext.size(), ext) == 0 &&
           s.find('/') == std::string::npos && s.find('\\') == std::string::npos && s.front() != '.' &&
           s.find('\0') == std::string::npos;
}

} // namespace

std::map<std::string, std::string> parse_shard_index(const std::string& text, const std::string& what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw ModelFileError(fmt::format("{}: not valid JSON: {}", what, e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
        throw ModelFileError(fmt::format("{}: needs a \"weight_map\" object of tensor name to shard file", what));
    std::map<std::string, std::string> m;
    for (const auto& [name, shard] : j.at("weight_map").items()) {
        if (!shard.is_string())
            throw ModelFileError(fmt::format("{}: weight_map[\"{}\"] must be a shard file name", what, name));
        const std::string s = shard.get<std::string>();
        if (!plain_shard_name(s))
            throw ModelFileError(
                fmt::format("{}: weight_map[\"{}\"] = \"{}\" is not a plain *.safetensors file name in the checkpoint",
                            what, name, s));
        m[name] = s;
    }
    if (m.empty()) throw ModelFileError(fmt::format("{}: weight_map is empty", what));
    return m;
}

std::string shard_index_json(const std::map<std::string, std::string>& weight_map, unsigned long long total_size) {
    return json{{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}}.dump(2);
}

std::string shard_file_name(int index, int count) {
    return fmt::format("model-{:05d}-of-{:05d}.safetensors", index, count);
}

} // namespace attncheck
