#include "properties/campaign/adapter_frame.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attncheck {

static_assert(std::endian::native == std::endian::little, "safetensors framing is little-endian");

namespace {

using nlohmann::json;

// A header larger than this is not one of ours (a few KiB at most).
constexpr std::uint64_t kMaxHeader = 1 << 24;
// Nor is a message with more data than the largest case's tensors.
constexpr std::uint64_t kMaxData = std::uint64_t{1} << 34;

} // namespace

std::string Frame::type() const {
    const auto it = meta.find("type");
    return it == meta.end() ? std::string() : it->second;
}

std::string encode_frame(const Frame& f) {
    json h = json::object();
    h["__metadata__"] = f.meta;
    std::uint64_t off = 0;
    for (const auto& [name, t] : f.tensors) {
        const std::uint64_t bytes = t.data.size() * sizeof(float);
        h[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + bytes}}};
        off += bytes;
    }
    const std::string header = h.dump();
    std::string out(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    out += header;
    for (const auto& [name, t] : f.tensors)
        out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
    return out;
}

namespace {
Frame frame_from_header(const nlohmann::json& h, const std::function<void(char*, std::size_t)>& read_exact);
} // namespace

Frame decode_frame(const std::function<void(char*, std::size_t)>& read_exact) {
    std::uint64_t n = 0;
    read_exact(reinterpret_cast<char*>(&n), 8);
    if (n == 0 || n > kMaxHeader) throw std::runtime_error(fmt::format("adapter message: header of {} bytes", n));
    std::string header(n, '\0');
    read_exact(header.data(), n);
    json h;
    try {
        h = json::parse(header);
    } catch (const json::exception& e) {
        throw std::runtime_error(std::string("adapter message: header is not JSON: ") + e.what());
    }
    if (!h.is_object()) throw std::runtime_error("adapter message: header is not a JSON object");
    try {
        return frame_from_header(h, read_exact);
    } catch (const json::exception& e) {
        // A field of the wrong JSON type (found by fuzz/fuzz_adapter_frame.cpp:
        // "dtype": [1, 3] escaped as nlohmann's type_error).
        throw std::runtime_error(std::string("adapter message: malformed header: ") + e.what());
    }
}

namespace {

Frame frame_from_header(const nlohmann::json& h, const std::function<void(char*, std::size_t)>& read_exact) {
    Frame f;
    std::uint64_t data_bytes = 0;
    struct Span {
        std::string name;
        std::uint64_t begin, end;
    };
    std::vector<Span> spans;
    for (const auto& [key, v] : h.items()) {
        if (key == "__metadata__") {
            if (!v.is_object()) throw std::runtime_error("adapter message: __metadata__ is not an object");
            for (const auto& [mk, mv] : v.items()) {
                if (!mv.is_string()) throw std::runtime_error("adapter message: metadata " + mk + " is not a string");
                f.meta[mk] = mv.get<std::string>();
            }
            continue;
        }
        if (!v.is_object() || v.value("dtype", "") != "F32" || !v.contains("shape") || !v.contains("data_offsets"))
            throw std::runtime_error("adapter message: tensor " + key + " must be F32 with shape and data_offsets");
        const auto shape = v.at("shape").get<std::vector<long long>>();
        const auto offs = v.at("data_offsets").get<std::vector<std::uint64_t>>();
        std::uint64_t elems = 1;
        for (long long d : shape) {
            if (d < 0) throw std::runtime_error("adapter message: tensor " + key + " has a negative dimension");
            elems *= static_cast<std::uint64_t>(d);
        }
        if (offs.size() != 2 || offs[1] < offs[0] || offs[1] - offs[0] != elems * sizeof(float) || offs[1] > kMaxData)
            throw std::runtime_error("adapter message: tensor " + key + "'s data_offsets do not match its shape");
        f.tensors[key].shape = shape;
        spans.push_back({key, offs[0], offs[1]});
        data_bytes = std::max(data_bytes, offs[1]);
    }
    std::string data(data_bytes, '\0');
    if (data_bytes) read_exact(data.data(), data_bytes);
    for (const Span& s : spans) {
        FrameTensor& t = f.tensors[s.name];
        t.data.resize((s.end - s.begin) / sizeof(float));
        std::memcpy(t.data.data(), data.data() + s.begin, s.end - s.begin);
    }
    return f;
}

} // namespace

} // namespace attncheck
