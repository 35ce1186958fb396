// Sharded Hugging Face checkpoints: model.safetensors.index.json maps every
// tensor name to the shard file that holds it ({"metadata": {"total_size":
// N}, "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors",
// ...}}), as transformers writes checkpoints above its shard size. The
// reader refuses, naming the index: a file that is not a JSON object with a
// "weight_map" object of strings, and a shard name that is not a plain
// *.safetensors file name in the same directory (no paths: an index must not
// make us read outside the checkpoint).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace attncheck {

inline constexpr const char* kShardIndexFile = "model.safetensors.index.json";

// tensor name -> shard file name. Throws ModelFileError.
std::map<std::string, std::string> parse_shard_index(const std::string& json_text, const std::string& what);

// The index a writer records for shards (total_size: the tensor bytes).
std::string shard_index_json(const std::map<std::string, std::string>& weight_map, unsigned long long total_size);

// transformers' shard file names: model-00001-of-00003.safetensors.
std::string shard_file_name(int index, int count);

} // namespace attncheck
