// One message of the external adapter protocol (docs/adapter-protocol.md):
// a safetensors blob holding F32 tensors and string metadata, read from and
// written to a pipe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace attncheck {

struct FrameTensor {
    std::vector<long long> shape;
    std::vector<float> data;
};

struct Frame {
    std::map<std::string, std::string> meta; // __metadata__; "type" names the message
    std::map<std::string, FrameTensor> tensors;
    std::string type() const;
};

std::string encode_frame(const Frame& f);

// `read_exact(buf, n)` fills n bytes or throws. Throws std::runtime_error for
// a malformed message (header too large or not JSON, a dtype other than F32,
// offsets that do not add up), naming what is wrong.
Frame decode_frame(const std::function<void(char*, std::size_t)>& read_exact);

} // namespace attncheck
