// Hugging Face checkpoints: config.json + model.safetensors, read with every
// field validated, and written back (for tests and the transformers
// cross-check, which build a checkpoint and read it with both programs).
//
// safetensors layout: an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype": "F32"|"F16"|"BF16", "shape": [...],
// "data_offsets": [begin, end]}, "__metadata__": {...}}), then the data;
// offsets are relative to the first byte after the header. The reader
// rejects, with a message naming the file and the tensor: a file shorter
// than 8 bytes, a header length past the end of the file, a header that is
// not a JSON object, an entry without a valid dtype/shape/data_offsets,
// offsets outside the data or overlapping another tensor, a byte count that
// does not match the shape, a dtype other than the config's, a shape other
// than the config implies, a missing tensor, an unknown tensor, and
// non-finite values. It never reads outside the file.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/model_weights.hpp"

namespace attncheck {

struct ModelFileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One tensor as found in a safetensors file (values converted to float).
struct SafeTensor {
    std::string dtype; // "F32", "F16", "BF16"
    std::vector<long long> shape;
    std::vector<float> values;
};

// Parses a whole safetensors image (validated as above, except the
// model-specific checks). `what` names the source in messages.
std::map<std::string, SafeTensor> parse_safetensors(const std::string& bytes, const std::string& what);
std::string read_file_bytes(const std::string& path);

// dir/config.json + dir/model.safetensors (or a sharded checkpoint: the
// shards model.safetensors.index.json names, model/checkpoint_index.hpp) ->
// validated weights. Throws ConfigError (config) or ModelFileError (tensors,
// naming the file that holds the bad one).
ModelWeights load_hf_model(const std::string& dir);
// The same from the two images in memory (the tests' bad files).
ModelWeights load_hf_model_from(const std::string& config_json, const std::string& safetensors_bytes,
                                const std::string& what);

// Hugging Face tensor names of a config, in file order, with their shapes.
std::vector<std::pair<std::string, std::vector<long long>>> hf_tensor_names(const ModelConfig& c);

// Writes dir/config.json and dir/model.safetensors (dtype = config dtype);
// with max_shard_bytes > 0, shards of at most that many tensor bytes and
// model.safetensors.index.json instead.
void save_hf_model(const ModelWeights& w, const std::string& dir, unsigned long long max_shard_bytes = 0);
std::string safetensors_image(const ModelWeights& w);
// A safetensors image from named tensors (any of F32/F16/BF16), for tests
// that need a file this writer would never produce from weights.
std::string safetensors_image(const std::map<std::string, SafeTensor>& tensors);

} // namespace attncheck
