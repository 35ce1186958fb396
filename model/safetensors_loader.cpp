// safetensors reading/writing and the Llama/Qwen2 tensor map (see the header).
#include "model/safetensors_loader.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/checkpoint_index.hpp"

namespace attncheck {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; big-endian hosts need a byte swap");

namespace {

using nlohmann::json;

// Far above any real header (Llama-405B's is a few hundred KiB) and small
// enough that a hostile length cannot make us allocate gigabytes.
constexpr std::uint64_t kMaxHeader = 100u << 20;

size_t elem_size(const std::string& dt) { return dt == "F32" ? 4 : 2; }

float decode(const std::string& dt, const unsigned char* p) {
    if (dt == "F32") {
        float f;
        std::memcpy(&f, p, 4);
        return f;
    }
    std::uint16_t h;
    std::memcpy(&h, p, 2);
    return dt == "F16" ? f16_bits_to_float(h) : bf16_bits_to_float(h);
}

void encode(const std::string& dt, float x, std::string& out) {
    if (dt == "F32") {
        char b[4];
        std::memcpy(b, &x, 4);
        out.append(b, 4);
        return;
    }
    const std::uint16_t h = dt == "F16" ? float_to_f16_bits(x) : float_to_bf16_bits(x);
    char b[2];
    std::memcpy(b, &h, 2);
    out.append(b, 2);
}

const char* st_dtype(DType t) { return t == DType::f32 ? "F32" : t == DType::f16 ? "F16" : "BF16"; }

} // namespace

std::string read_file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ModelFileError(fmt::format("{}: cannot open", path));
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw ModelFileError(fmt::format("{}: read error", path));
    return s;
}

std::map<std::string, SafeTensor> parse_safetensors(const std::string& bytes, const std::string& what) {
    if (bytes.size() < 8)
        throw ModelFileError(
            fmt::format("{}: truncated: {} bytes, not even the 8-byte header length", what, bytes.size()));
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    if (n > kMaxHeader)
        throw ModelFileError(fmt::format("{}: header length {} over the {} byte limit", what, n, kMaxHeader));
    if (n > bytes.size() - 8)
        throw ModelFileError(
            fmt::format("{}: header length {} runs past the end of the file ({} bytes after the length)", what, n,
                        bytes.size() - 8));
    json h;
    try {
        h = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
    } catch (const json::exception& e) {
        throw ModelFileError(fmt::format("{}: header is not valid JSON: {}", what, e.what()));
    }
    if (!h.is_object()) throw ModelFileError(fmt::format("{}: header must be a JSON object", what));
    const std::uint64_t data_size = bytes.size() - 8 - n;
    const unsigned char* data = reinterpret_cast<const unsigned char*>(bytes.data()) + 8 + n;
    std::map<std::string, SafeTensor> out;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
    std::vector<std::string> span_names;
    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& name = it.key();
        if (name == "__metadata__") continue;
        const json& e = it.value();
        auto bad = [&](const std::string& why) {
            return ModelFileError(fmt::format("{}: tensor \"{}\": {}", what, name, why));
        };
        if (!e.is_object()) throw bad("entry is not an object");
        if (!e.contains("dtype") || !e.at("dtype").is_string()) throw bad("no dtype string");
        SafeTensor t;
        t.dtype = e.at("dtype").get<std::string>();
        if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
            throw bad(fmt::format("dtype {} not supported (F32, F16, BF16)", t.dtype));
        if (!e.contains("shape") || !e.at("shape").is_array()) throw bad("no shape array");
        std::uint64_t numel = 1;
        for (const json& d : e.at("shape")) {
            if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<long long>() >= 0))
                throw bad(fmt::format("shape entry {} is not a non-negative integer", d.dump()));
            const std::uint64_t x = d.get<std::uint64_t>();
            if (x > (1ull << 40) || (x > 0 && numel > (1ull << 40) / x)) throw bad("shape too large");
            numel *= x;
            t.shape.push_back(static_cast<long long>(x));
        }
        if (!e.contains("data_offsets") || !e.at("data_offsets").is_array() || e.at("data_offsets").size() != 2 ||
            !e.at("data_offsets")[0].is_number_unsigned() || !e.at("data_offsets")[1].is_number_unsigned())
            throw bad("data_offsets must be two non-negative integers");
        const std::uint64_t b = e.at("data_offsets")[0].get<std::uint64_t>(),
                            en = e.at("data_offsets")[1].get<std::uint64_t>();
        if (b > en) throw bad(fmt::format("data_offsets [{}, {}] reversed", b, en));
        if (en > data_size)
            throw bad(fmt::format("data_offsets [{}, {}] past the end of the data ({} bytes): file truncated?", b, en,
                                  data_size));
        if (en - b != numel * elem_size(t.dtype))
            throw bad(fmt::format("{} bytes for shape of {} {} elements ({} bytes)", en - b, numel, t.dtype,
                                  numel * elem_size(t.dtype)));
        spans.push_back({b, en});
        span_names.push_back(name);
        t.values.resize(numel);
        const size_t es = elem_size(t.dtype);
        for (std::uint64_t i = 0; i < numel; ++i) t.values[i] = decode(t.dtype, data + b + i * es);
        out.emplace(name, std::move(t));
    }
    std::vector<size_t> order(spans.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a] < spans[b]; });
    for (size_t i = 1; i < order.size(); ++i) {
        const auto& p = spans[order[i - 1]];
        const auto& q = spans[order[i]];
        if (q.first < p.second && q.first != q.second && p.first != p.second)
            throw ModelFileError(fmt::format("{}: tensors \"{}\" [{}, {}] and \"{}\" [{}, {}] overlap", what,
                                             span_names[order[i - 1]], p.first, p.second, span_names[order[i]], q.first,
                                             q.second));
    }
    return out;
}

std::vector<std::pair<std::string, std::vector<long long>>> hf_tensor_names(const ModelConfig& c) {
    std::vector<std::pair<std::string, std::vector<long long>>> v;
    const long long h = c.hidden;
    v.push_back({"model.embed_tokens.weight", {c.vocab, h}});
    for (int l = 0; l < c.layers; ++l) {
        const std::string p = fmt::format("model.layers.{}.", l);
        v.push_back({p + "input_layernorm.weight", {h}});
        v.push_back({p + "self_attn.q_proj.weight", {c.q_dim(), h}});
        v.push_back({p + "self_attn.k_proj.weight", {c.kv_dim(), h}});
        v.push_back({p + "self_attn.v_proj.weight", {c.kv_dim(), h}});
        if (c.qkv_bias) {
            v.push_back({p + "self_attn.q_proj.bias", {c.q_dim()}});
            v.push_back({p + "self_attn.k_proj.bias", {c.kv_dim()}});
            v.push_back({p + "self_attn.v_proj.bias", {c.kv_dim()}});
        }
        v.push_back({p + "self_attn.o_proj.weight", {h, c.q_dim()}});
        v.push_back({p + "post_attention_layernorm.weight", {h}});
        v.push_back({p + "mlp.gate_proj.weight", {c.ffn, h}});
        v.push_back({p + "mlp.up_proj.weight", {c.ffn, h}});
        v.push_back({p + "mlp.down_proj.weight", {h, c.ffn}});
    }
    v.push_back({"model.norm.weight", {h}});
    if (!c.tied_embeddings) v.push_back({"lm_head.weight", {c.vocab, h}});
    return v;
}

namespace {

// The weights of config c from its named tensors; source(name) names the file
// a tensor came from (or the checkpoint, for one that is missing).
template <class Source>
ModelWeights weights_from_tensors(const ModelConfig& c, const std::map<std::string, SafeTensor>& tensors,
                                  const Source& source) {
    const std::string want = st_dtype(c.dtype);
    std::set<std::string> used;
    auto take = [&](const std::string& name, const std::vector<long long>& shape) -> std::vector<float> {
        const std::string what = source(name);
        auto it = tensors.find(name);
        if (it == tensors.end()) throw ModelFileError(fmt::format("{}: tensor \"{}\" missing", what, name));
        const SafeTensor& t = it->second;
        if (t.dtype != want)
            throw ModelFileError(
                fmt::format("{}: tensor \"{}\" has dtype {}, config.json says {}", what, name, t.dtype, want));
        if (t.shape != shape)
            throw ModelFileError(fmt::format("{}: tensor \"{}\" has shape [{}], the config implies [{}]", what, name,
                                             fmt::join(t.shape, ", "), fmt::join(shape, ", ")));
        for (size_t i = 0; i < t.values.size(); ++i)
            if (!std::isfinite(t.values[i]))
                throw ModelFileError(fmt::format("{}: tensor \"{}\" element {} is {}", what, name, i, t.values[i]));
        used.insert(name);
        return t.values;
    };
    ModelWeights w;
    w.config = c;
    const long long h = c.hidden;
    w.embed = take("model.embed_tokens.weight", {c.vocab, h});
    w.layers.resize(static_cast<size_t>(c.layers));
    for (int l = 0; l < c.layers; ++l) {
        LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = fmt::format("model.layers.{}.", l);
        L.attn_norm = take(p + "input_layernorm.weight", {h});
        L.wqkv = take(p + "self_attn.q_proj.weight", {c.q_dim(), h});
        for (const char* kv : {"k_proj", "v_proj"}) {
            auto m = take(p + "self_attn." + kv + ".weight", {c.kv_dim(), h});
            L.wqkv.insert(L.wqkv.end(), m.begin(), m.end());
        }
        if (c.qkv_bias) {
            L.bqkv = take(p + "self_attn.q_proj.bias", {c.q_dim()});
            for (const char* kv : {"k_proj", "v_proj"}) {
                auto b = take(p + "self_attn." + kv + ".bias", {c.kv_dim()});
                L.bqkv.insert(L.bqkv.end(), b.begin(), b.end());
            }
        }
        L.wo = take(p + "self_attn.o_proj.weight", {h, c.q_dim()});
        L.ffn_norm = take(p + "post_attention_layernorm.weight", {h});
        L.w_gate = take(p + "mlp.gate_proj.weight", {c.ffn, h});
        L.w_up = take(p + "mlp.up_proj.weight", {c.ffn, h});
        L.w_down = take(p + "mlp.down_proj.weight", {h, c.ffn});
    }
    w.final_norm = take("model.norm.weight", {h});
    if (!c.tied_embeddings)
        w.lm_head = take("lm_head.weight", {c.vocab, h});
    else if (tensors.count("lm_head.weight")) {
        // A tied checkpoint may still carry the copy; it must be the copy.
        if (take("lm_head.weight", {c.vocab, h}) != w.embed)
            throw ModelFileError(
                fmt::format("{}: tie_word_embeddings is true but lm_head.weight differs from the embedding",
                            source("lm_head.weight")));
    }
    for (const auto& [name, t] : tensors) {
        if (used.count(name)) continue;
        // Older transformers saved the RoPE frequencies; they follow from the config.
        if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0) continue;
        throw ModelFileError(fmt::format("{}: unexpected tensor \"{}\" (not part of a {} model with this config)",
                                         source(name), name, arch_name(c.arch)));
    }
    try {
        validate(w);
    } catch (const ConfigError& e) {
        throw ModelFileError(fmt::format("{}: {}", source(""), e.what()));
    }
    return w;
}

// The tensors of a sharded checkpoint, each checked against the index: every
// indexed tensor in its shard, every shard tensor indexed there.
std::map<std::string, SafeTensor> read_shards(const std::filesystem::path& dir,
                                              const std::map<std::string, std::string>& weight_map,
                                              const std::string& index_path) {
    std::map<std::string, SafeTensor> all;
    std::set<std::string> shards;
    for (const auto& [name, shard] : weight_map) shards.insert(shard);
    for (const std::string& shard : shards) {
        const std::filesystem::path p = dir / shard;
        if (!std::filesystem::is_regular_file(p))
            throw ModelFileError(fmt::format("{}: names shard {}, which is missing", index_path, shard));
        for (auto& [name, t] : parse_safetensors(read_file_bytes(p.string()), p.string())) {
            const auto it = weight_map.find(name);
            if (it == weight_map.end())
                throw ModelFileError(
                    fmt::format("{}: tensor \"{}\" is not in the index {}", p.string(), name, index_path));
            if (it->second != shard)
                throw ModelFileError(fmt::format("{}: tensor \"{}\" is here, but the index places it in {}", p.string(),
                                                 name, it->second));
            all.emplace(name, std::move(t));
        }
    }
    for (const auto& [name, shard] : weight_map)
        if (!all.count(name))
            throw ModelFileError(
                fmt::format("{}: lists tensor \"{}\" in {}, which does not hold it", index_path, name, shard));
    return all;
}

} // namespace

ModelWeights load_hf_model_from(const std::string& config_json, const std::string& st_bytes, const std::string& what) {
    const ModelConfig c = parse_hf_config(config_json);
    return weights_from_tensors(c, parse_safetensors(st_bytes, what), [&](const std::string&) { return what; });
}

ModelWeights load_hf_model(const std::string& dir) {
    namespace fs = std::filesystem;
    const fs::path d(dir);
    if (!fs::is_directory(d)) throw ModelFileError(fmt::format("{}: not a directory", dir));
    const fs::path cfg = d / "config.json", st = d / "model.safetensors", index = d / kShardIndexFile;
    if (!fs::exists(cfg)) throw ModelFileError(fmt::format("{}: no config.json", dir));
    if (!fs::exists(st) && !fs::exists(index))
        throw ModelFileError(
            fmt::format("{}: neither model.safetensors nor {} (a sharded checkpoint)", dir, kShardIndexFile));
    std::string cfg_text = read_file_bytes(cfg.string());
    ModelConfig c;
    try {
        c = parse_hf_config(cfg_text);
    } catch (const ConfigError& e) {
        throw ConfigError(fmt::format("{}: {}", cfg.string(), e.what()));
    }
    if (fs::exists(st))
        return weights_from_tensors(c, parse_safetensors(read_file_bytes(st.string()), st.string()),
                                    [&](const std::string&) { return st.string(); });
    const auto weight_map = parse_shard_index(read_file_bytes(index.string()), index.string());
    return weights_from_tensors(c, read_shards(d, weight_map, index.string()), [&](const std::string& name) {
        const auto it = weight_map.find(name);
        return it == weight_map.end() ? index.string() : (d / it->second).string();
    });
}

std::string safetensors_image(const std::map<std::string, SafeTensor>& tensors) {
    json h = json::object();
    std::uint64_t off = 0;
    std::string data;
    // Sorted by name (std::map), as the Python library writes them.
    for (const auto& [name, t] : tensors) {
        const std::uint64_t n = t.values.size() * elem_size(t.dtype);
        h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
        for (float x : t.values) encode(t.dtype, x, data);
        off += n;
    }
    h["__metadata__"] = {{"format", "pt"}};
    std::string hs = h.dump();
    while ((hs.size() + 8) % 8 != 0) hs.push_back(' '); // data 8-byte aligned, as the reference writer does
    std::string out(8, '\0');
    const std::uint64_t len = hs.size();
    std::memcpy(out.data(), &len, 8);
    return out + hs + data;
}

namespace {

std::map<std::string, SafeTensor> named_tensors(const ModelWeights& w) {
    validate(w);
    const ModelConfig& c = w.config;
    const std::string dt = st_dtype(c.dtype);
    std::map<std::string, SafeTensor> m;
    auto put = [&](const std::string& name, std::vector<long long> shape, const float* p, size_t n) {
        m[name] = SafeTensor{dt, std::move(shape), std::vector<float>(p, p + n)};
    };
    const long long h = c.hidden;
    const size_t hq = static_cast<size_t>(c.q_dim()) * h, hkv = static_cast<size_t>(c.kv_dim()) * h;
    put("model.embed_tokens.weight", {c.vocab, h}, w.embed.data(), w.embed.size());
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        const std::string p = fmt::format("model.layers.{}.", l);
        put(p + "input_layernorm.weight", {h}, L.attn_norm.data(), L.attn_norm.size());
        put(p + "self_attn.q_proj.weight", {c.q_dim(), h}, L.wqkv.data(), hq);
        put(p + "self_attn.k_proj.weight", {c.kv_dim(), h}, L.wqkv.data() + hq, hkv);
        put(p + "self_attn.v_proj.weight", {c.kv_dim(), h}, L.wqkv.data() + hq + hkv, hkv);
        if (c.qkv_bias) {
            put(p + "self_attn.q_proj.bias", {c.q_dim()}, L.bqkv.data(), c.q_dim());
            put(p + "self_attn.k_proj.bias", {c.kv_dim()}, L.bqkv.data() + c.q_dim(), c.kv_dim());
            put(p + "self_attn.v_proj.bias", {c.kv_dim()}, L.bqkv.data() + c.q_dim() + c.kv_dim(), c.kv_dim());
        }
        put(p + "self_attn.o_proj.weight", {h, c.q_dim()}, L.wo.data(), L.wo.size());
        put(p + "post_attention_layernorm.weight", {h}, L.ffn_norm.data(), L.ffn_norm.size());
        put(p + "mlp.gate_proj.weight", {c.ffn, h}, L.w_gate.data(), L.w_gate.size());
        put(p + "mlp.up_proj.weight", {c.ffn, h}, L.w_up.data(), L.w_up.size());
        put(p + "mlp.down_proj.weight", {h, c.ffn}, L.w_down.data(), L.w_down.size());
    }
    put("model.norm.weight", {h}, w.final_norm.data(), w.final_norm.size());
    if (!c.tied_embeddings) put("lm_head.weight", {c.vocab, h}, w.lm_head.data(), w.lm_head.size());
    return m;
}

} // namespace

std::string safetensors_image(const ModelWeights& w) { return safetensors_image(named_tensors(w)); }

void save_hf_model(const ModelWeights& w, const std::string& dir, unsigned long long max_shard_bytes) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    auto write = [](const fs::path& p, const std::string& s) {
        std::ofstream f(p, std::ios::binary);
        f.write(s.data(), static_cast<std::streamsize>(s.size()));
        if (!f) throw ModelFileError(fmt::format("{}: write failed", p.string()));
    };
    write(fs::path(dir) / "config.json", hf_config_json(w.config));
    if (max_shard_bytes == 0) {
        write(fs::path(dir) / "model.safetensors", safetensors_image(w));
        return;
    }
    // Tensors in name order into shards of at most max_shard_bytes (a larger
    // tensor gets a shard of its own), as transformers' save_pretrained does.
    std::vector<std::map<std::string, SafeTensor>> shards(1);
    unsigned long long in_shard = 0, total = 0;
    for (auto& [name, t] : named_tensors(w)) {
        const unsigned long long n = t.values.size() * elem_size(t.dtype);
        if (in_shard > 0 && in_shard + n > max_shard_bytes) {
            shards.emplace_back();
            in_shard = 0;
        }
        in_shard += n;
        total += n;
        shards.back().emplace(name, std::move(t));
    }
    std::map<std::string, std::string> weight_map;
    const int count = static_cast<int>(shards.size());
    for (int i = 0; i < count; ++i) {
        const std::string file = shard_file_name(i + 1, count);
        for (const auto& [name, t] : shards[static_cast<size_t>(i)]) weight_map[name] = file;
        write(fs::path(dir) / file, safetensors_image(shards[static_cast<size_t>(i)]));
    }
    write(fs::path(dir) / kShardIndexFile, shard_index_json(weight_map, total));
}

} // namespace attncheck
