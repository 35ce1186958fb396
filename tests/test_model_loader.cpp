// Hugging Face checkpoint reading: a round trip through the writer gives the
// same weights and the same logits, and every malformed input -- config or
// safetensors -- gets its own clear error (one test per error; the bad files
// are built here, small).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/model_cpu.hpp"
#include "model/oracle/model_oracle_check.hpp"
#include "model/rope.hpp"
#include "model/safetensors_loader.hpp"

using namespace attncheck;

namespace {

ModelWeights tiny(ModelArch a = ModelArch::qwen2, DType d = DType::f32) {
    ModelConfig c = tiny_config(a, d);
    c.layers = 1;
    c.vocab = 11;
    c.hidden = 16;
    c.ffn = 8;
    c.n_q_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    RandomWeightOptions o;
    o.seed = 5;
    return random_weights(c, o);
}

// Expects `f` to throw E with a message containing `needle`.
template <class E, class F>
void expect_error(F&& f, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one mentioning \"" << needle << "\"";
    } catch (const E& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type, message: " << e.what();
    }
}

std::string with_header(const std::string& header_json, const std::string& data = "") {
    std::string out(8, '\0');
    const std::uint64_t n = header_json.size();
    std::memcpy(out.data(), &n, 8);
    return out + header_json + data;
}

} // namespace

TEST(ModelLoader, RoundTripKeepsWeightsAndLogits) {
    for (DType d : {DType::f32, DType::f16, DType::bf16})
        for (ModelArch a : {ModelArch::llama, ModelArch::qwen2}) {
            const ModelWeights w = tiny(a, d);
            const auto dir =
                std::filesystem::temp_directory_path() /
                ("attncheck_model_rt_" + std::string(arch_name(a)) + dtype_name(d) + std::to_string(getpid()));
            save_hf_model(w, dir.string());
            const ModelWeights r = load_hf_model(dir.string());
            std::filesystem::remove_all(dir);
            EXPECT_EQ(r.config.summary(), w.config.summary());
            EXPECT_EQ(r.embed, w.embed);
            EXPECT_EQ(r.layers[0].wqkv, w.layers[0].wqkv);
            EXPECT_EQ(r.layers[0].bqkv, w.layers[0].bqkv);
            EXPECT_EQ(r.layers[0].w_down, w.layers[0].w_down);
            EXPECT_EQ(r.final_norm, w.final_norm);
            EXPECT_EQ(r.lm_head, w.lm_head);
            auto e1 = make_cpu_model(w, 1), e2 = make_cpu_model(r, 1);
            ForwardOptions o;
            o.attention = "standard_path";
            EXPECT_EQ(e1->forward({{0, {1, 2, 3}}}, o).logits, e2->forward({{0, {1, 2, 3}}}, o).logits);
        }
}

TEST(ModelLoader, HfConfigParsesTransformersKeys) {
    const ModelConfig c = parse_hf_config(R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "torch_dtype": "bfloat16"})");
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(c.dtype, DType::bf16);
    EXPECT_EQ(c.rope_theta, 1e6);
}

// ---- config errors
TEST(ModelLoaderErrors, ConfigNotJson) {
    expect_error<ConfigError>([] { parse_hf_config("{not json"); }, "not valid JSON");
}
TEST(ModelLoaderErrors, ConfigUnknownModelType) {
    expect_error<ConfigError>([] { parse_hf_config(R"({"model_type": "gpt2"})"); }, "not supported");
}
TEST(ModelLoaderErrors, ConfigMissingKey) {
    expect_error<ConfigError>([] { parse_hf_config(R"({"model_type": "llama", "vocab_size": 10})"); },
                              "\"hidden_size\" missing");
}
TEST(ModelLoaderErrors, ConfigWrongType) {
    expect_error<ConfigError>(
        [] {
            parse_hf_config(R"({"model_type": "llama", "vocab_size": "10", "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 1, "intermediate_size": 8})");
        },
        "must be an integer");
}
TEST(ModelLoaderErrors, ConfigAbsurdVocab) {
    expect_error<ConfigError>(
        [] {
            parse_hf_config(R"({"model_type": "llama", "vocab_size": 1099511627776, "hidden_size": 8,
                "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 8})");
        },
        "vocab_size");
}
TEST(ModelLoaderErrors, ConfigHeadsNotDivisible) {
    expect_error<ConfigError>(
        [] {
            parse_hf_config(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 12, "num_hidden_layers": 1,
                "num_attention_heads": 3, "num_key_value_heads": 2, "intermediate_size": 8})");
        },
        "not a multiple");
}
TEST(ModelLoaderErrors, ConfigNegativeEps) {
    expect_error<ConfigError>(
        [] {
            parse_hf_config(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 1, "intermediate_size": 8, "rms_norm_eps": -1})");
        },
        "rms_norm_eps");
}
// RoPE scaling as transformers writes it (rope_scaling in 4.x, rope_parameters
// in 5.x): linear, llama3 and yarn read; dynamic and unknown types refused by name.
TEST(ModelLoader, ConfigRopeScalingVariants) {
    const std::string head = R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 2048, )";
    const ModelConfig lin = parse_hf_config(head + R"("rope_scaling": {"type": "linear", "factor": 2}})");
    EXPECT_EQ(lin.rope_scaling.type, RopeScalingType::linear);
    EXPECT_EQ(lin.rope_scaling.factor, 2.0);
    const ModelConfig l3 = parse_hf_config(head + R"("rope_scaling": {"rope_type": "llama3", "factor": 8,
        "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}})");
    EXPECT_EQ(l3.rope_scaling.type, RopeScalingType::llama3);
    EXPECT_EQ(l3.rope_scaling.original_max, 8192.0);
    const ModelConfig y = parse_hf_config(head + R"("rope_parameters": {"rope_type": "yarn", "factor": 4,
        "rope_theta": 1000000}})");
    EXPECT_EQ(y.rope_scaling.type, RopeScalingType::yarn);
    EXPECT_EQ(y.rope_scaling.original_max, 2048.0) << "falls back to max_position_embeddings, as transformers does";
    EXPECT_EQ(y.rope_theta, 1e6);
    // What attncheck writes it reads back the same.
    ModelConfig c = tiny(ModelArch::qwen2).config;
    c.rope_scaling = l3.rope_scaling;
    EXPECT_EQ(parse_hf_config(hf_config_json(c)).rope_scaling, c.rope_scaling);
    // transformers builds ranges from these: a float 8192.0 fails its loader.
    const auto written = nlohmann::json::parse(hf_config_json(c));
    EXPECT_TRUE(written["max_position_embeddings"].is_number_integer());
    EXPECT_TRUE(written["rope_scaling"]["original_max_position_embeddings"].is_number_integer());
    expect_error<ConfigError>([&] { parse_hf_config(head + R"("rope_scaling": {"type": "dynamic", "factor": 2}})"); },
                              "dynamic (NTK) scaling is not supported");
    expect_error<ConfigError>([&] { parse_hf_config(head + R"("rope_scaling": {"type": "su", "factor": 2}})"); },
                              "not supported (default, linear, llama3, yarn)");
    expect_error<ConfigError>([&] { parse_hf_config(head + R"("rope_scaling": {"type": "linear"}})"); },
                              "needs \"factor\"");
    expect_error<ConfigError>([&] { parse_hf_config(head + R"("rope_scaling": {"type": "linear", "factor": 0.5}})"); },
                              "rope_scaling.factor");
    expect_error<ConfigError>(
        [&] {
            parse_hf_config(head + R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
            "high_freq_factor": 1, "original_max_position_embeddings": 8192}})");
        },
        "high_freq_factor must exceed");
    expect_error<ConfigError>(
        [&] { parse_hf_config(head + R"("rope_scaling": {"rope_type": "yarn", "factor": 4, "mscale": 0.7}})"); },
        "mscale");
}

// The scalings' frequencies keep the properties their definitions give them
// (Llama 3.1's and Qwen's published settings): llama3 keeps the fast pairs
// and divides the slow ones by the factor; yarn likewise, with the attention
// factor 0.1 ln(factor) + 1; linear divides every one.
TEST(ModelRopeScaling, FrequenciesFollowTheirDefinitions) {
    ModelConfig c = tiny_config(ModelArch::llama, DType::f32);
    c.head_dim = 128;
    c.rope_theta = 500000;
    ModelConfig plain = c;
    c.rope_scaling = {RopeScalingType::llama3, 8.0, 1.0, 4.0, 8192};
    EXPECT_EQ(rope_inv_freq(c, 0), rope_inv_freq(plain, 0)) << "wavelength 2 pi < 8192 / 4: kept";
    EXPECT_DOUBLE_EQ(rope_inv_freq(c, 63), rope_inv_freq(plain, 63) / 8) << "wavelength > 8192: divided by 8";
    for (int i = 1; i < 64; ++i) EXPECT_LE(rope_inv_freq(c, i), rope_inv_freq(plain, i));
    EXPECT_EQ(rope_attention_factor(c), 1.0);
    c.rope_scaling = RopeScaling{};
    c.rope_scaling.type = RopeScalingType::linear;
    c.rope_scaling.factor = 4;
    for (int i : {0, 17, 63}) EXPECT_DOUBLE_EQ(rope_inv_freq(c, i), rope_inv_freq(plain, i) / 4);
    c.rope_scaling.type = RopeScalingType::yarn;
    c.rope_scaling.original_max = 4096;
    EXPECT_EQ(rope_inv_freq(c, 0), rope_inv_freq(plain, 0));
    EXPECT_DOUBLE_EQ(rope_inv_freq(c, 63), rope_inv_freq(plain, 63) / 4);
    EXPECT_DOUBLE_EQ(rope_attention_factor(c), 0.1 * std::log(4.0) + 1);
}

// ---- safetensors errors
class SafetensorsErrors : public ::testing::Test {
protected:
    ModelWeights w = tiny();
    std::string cfg = hf_config_json(w.config);
    std::string good = safetensors_image(w);
    std::map<std::string, SafeTensor> tensors() { return parse_safetensors(good, "good"); }
    void expect(const std::string& bytes, const std::string& needle) {
        expect_error<ModelFileError>([&] { load_hf_model_from(cfg, bytes, "bad.safetensors"); }, needle);
    }
};

TEST_F(SafetensorsErrors, GoodImageLoads) { EXPECT_NO_THROW(load_hf_model_from(cfg, good, "good")); }
TEST_F(SafetensorsErrors, ShorterThanLength) { expect(std::string(5, '\0'), "truncated"); }
TEST_F(SafetensorsErrors, HeaderLengthPastEof) {
    std::string b = good;
    const std::uint64_t n = b.size(); // header "length" = the whole file
    std::memcpy(b.data(), &n, 8);
    expect(b, "past the end of the file");
}
TEST_F(SafetensorsErrors, HugeHeaderLength) {
    std::string b = good;
    const std::uint64_t n = ~0ull;
    std::memcpy(b.data(), &n, 8);
    expect(b, "over the");
}
TEST_F(SafetensorsErrors, HeaderNotJson) { expect(with_header("{\"a\": [1, 2"), "not valid JSON"); }
TEST_F(SafetensorsErrors, HeaderNotObject) { expect(with_header("[1, 2]"), "must be a JSON object"); }
TEST_F(SafetensorsErrors, EntryWithoutOffsets) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [1]}})", std::string(4, '\0')), "data_offsets");
}
TEST_F(SafetensorsErrors, OffsetsPastData) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(8, '\0')),
           "past the end of the data");
}
TEST_F(SafetensorsErrors, OffsetsReversed) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", std::string(8, '\0')),
           "reversed");
}
TEST_F(SafetensorsErrors, SizeDoesNotMatchShape) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0')),
           "bytes for shape");
}
TEST_F(SafetensorsErrors, OverlappingTensors) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                           "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                       std::string(12, '\0')),
           "overlap");
}
TEST_F(SafetensorsErrors, UnsupportedDtype) {
    expect(with_header(R"({"x": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", std::string(8, '\0')),
           "dtype I64 not supported");
}
TEST_F(SafetensorsErrors, NegativeShape) {
    expect(with_header(R"({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", std::string(4, '\0')),
           "non-negative");
}
TEST_F(SafetensorsErrors, TruncatedData) { expect(good.substr(0, good.size() - 3), "past the end of the data"); }
TEST_F(SafetensorsErrors, WrongDtype) {
    auto t = tensors();
    t["model.norm.weight"].dtype = "BF16";
    expect(safetensors_image(t), "has dtype BF16, config.json says F32");
}
TEST_F(SafetensorsErrors, WrongShape) {
    auto t = tensors();
    auto& x = t["model.layers.0.self_attn.k_proj.weight"];
    x.shape = {x.shape[1], x.shape[0]};
    expect(safetensors_image(t), "has shape");
}
TEST_F(SafetensorsErrors, MissingTensor) {
    auto t = tensors();
    t.erase("model.layers.0.self_attn.q_proj.bias");
    expect(safetensors_image(t), "\"model.layers.0.self_attn.q_proj.bias\" missing");
}
TEST_F(SafetensorsErrors, UnknownTensor) {
    auto t = tensors();
    t["model.layers.7.mlp.gate_proj.weight"] = t["model.layers.0.mlp.gate_proj.weight"];
    expect(safetensors_image(t), "unexpected tensor");
}
TEST_F(SafetensorsErrors, NonFiniteValue) {
    auto t = tensors();
    t["model.norm.weight"].values[3] = std::numeric_limits<float>::quiet_NaN();
    expect(safetensors_image(t), "element 3");
}
TEST_F(SafetensorsErrors, TiedButDifferentLmHead) {
    auto t = tensors();
    t["lm_head.weight"] = t["model.embed_tokens.weight"];
    t["lm_head.weight"].values[0] += 1.0f;
    expect(safetensors_image(t), "differs from the embedding");
}
TEST(ModelLoaderErrors, MissingDirectoryAndFiles) {
    expect_error<ModelFileError>([] { load_hf_model("/nonexistent/attncheck_model"); }, "not a directory");
    const auto dir = std::filesystem::temp_directory_path() / ("attncheck_model_empty_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    expect_error<ModelFileError>([&] { load_hf_model(dir.string()); }, "no config.json");
    std::ofstream(dir / "config.json") << hf_config_json(tiny().config);
    expect_error<ModelFileError>([&] { load_hf_model(dir.string()); }, "neither model.safetensors nor");
    std::filesystem::remove_all(dir);
}

// The external-trace path the transformers cross-check uses: our own CPU
// engine's trace, exported and read back, passes; the same trace with one
// stage perturbed fails at that stage; a malformed trace is refused.
TEST(ModelExternalTrace, RoundTripPassesAndAPerturbationIsNamed) {
    ModelConfig c = tiny_config(ModelArch::qwen2, DType::f32);
    RandomWeightOptions o;
    o.seed = 8;
    const ModelWeights w = random_weights(c, o);
    auto e = make_cpu_model(w, 1);
    const std::vector<int> toks = {4, 8, 15, 16, 23, 42};
    ForwardOptions fo;
    fo.trace = true;
    const StepOutput out = e->forward({{0, toks}}, fo);
    const std::string js = trace_to_json(c, *out.trace, toks);
    const OracleTrace orc = model_oracle_forward(w, toks);
    // Our engine's attention is a CPU family, not transformers': judge it
    // with the profile of the family it used (flash_prefill) for the pass.
    std::vector<int> back;
    ModelTrace t = trace_from_json(c, js, out.trace->attn_profile[0], &back);
    EXPECT_EQ(back, toks);
    DivergenceReport ok = check_forward(w, t, {{0, &orc}}, model_precision(c, Backend::cpu));
    EXPECT_TRUE(ok.ok) << ok.summary();
    for (float& x : t.at(1, Stage::gate)) x *= 1.001f;
    DivergenceReport bad = check_forward(w, t, {{0, &orc}}, model_precision(c, Backend::cpu));
    ASSERT_FALSE(bad.ok);
    EXPECT_EQ(bad.first->layer, 1);
    EXPECT_EQ(bad.first->stage, Stage::gate);
    EXPECT_THROW(trace_from_json(c, R"({"tokens": [1, 2]})", out.trace->attn_profile[0], nullptr),
                 std::invalid_argument);
    EXPECT_THROW(trace_from_json(c, "{", out.trace->attn_profile[0], nullptr), std::invalid_argument);
}

// ---- sharded checkpoints (model.safetensors.index.json)
namespace {

struct ShardedDir {
    std::filesystem::path dir;
    ModelWeights w = tiny(ModelArch::qwen2, DType::bf16);
    explicit ShardedDir(const std::string& tag, unsigned long long shard_bytes = 600)
        : dir(std::filesystem::temp_directory_path() / ("attncheck_sharded_" + tag + std::to_string(getpid()))) {
        std::filesystem::remove_all(dir);
        save_hf_model(w, dir.string(), shard_bytes);
    }
    ~ShardedDir() { std::filesystem::remove_all(dir); }
    std::string index() const { return read_file_bytes((dir / "model.safetensors.index.json").string()); }
    void set_index(const std::string& text) const { std::ofstream(dir / "model.safetensors.index.json") << text; }
    void replace_in_index(const std::string& from, const std::string& to) const {
        std::string s = index();
        const size_t at = s.find(from);
        ASSERT_NE(at, std::string::npos) << from;
        set_index(s.replace(at, from.size(), to));
    }
};

} // namespace

TEST(ModelLoaderSharded, ShardsLoadTheSameWeightsAsOneFile) {
    const ShardedDir d("ok");
    int shards = 0;
    for (const auto& e : std::filesystem::directory_iterator(d.dir))
        shards += e.path().filename().string().rfind("model-", 0) == 0;
    EXPECT_GE(shards, 3) << "600-byte shards must split the tiny model";
    EXPECT_FALSE(std::filesystem::exists(d.dir / "model.safetensors"));
    const ModelWeights r = load_hf_model(d.dir.string());
    EXPECT_EQ(r.embed, d.w.embed);
    EXPECT_EQ(r.layers[0].wqkv, d.w.layers[0].wqkv);
    EXPECT_EQ(r.layers[0].bqkv, d.w.layers[0].bqkv);
    EXPECT_EQ(r.layers[0].w_down, d.w.layers[0].w_down);
    EXPECT_EQ(r.final_norm, d.w.final_norm);
    EXPECT_EQ(r.lm_head, d.w.lm_head);
}

TEST(ModelLoaderSharded, BadIndexesAreRefusedByName) {
    {
        const ShardedDir d("json");
        d.set_index("{\"weight_map\": [1,");
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "not valid JSON");
    }
    {
        const ShardedDir d("nomap");
        d.set_index("{\"metadata\": {}}");
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "needs a \"weight_map\" object");
    }
    {
        const ShardedDir d("path");
        d.replace_in_index("\"model-00001-of-", "\"../model-00001-of-");
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "not a plain *.safetensors file name");
    }
    {
        const ShardedDir d("missing");
        for (const auto& e : std::filesystem::directory_iterator(d.dir))
            if (e.path().filename().string().rfind("model-00002-of-", 0) == 0) std::filesystem::remove(e.path());
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "which is missing");
    }
    {
        const ShardedDir d("unindexed"); // a shard tensor the index does not list
        d.replace_in_index("\"model.norm.weight\"", "\"model.norm.weight_renamed\"");
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "is not in the index");
    }
    {
        const ShardedDir d("wrongshard"); // the index places a tensor in another shard
        const std::string s = d.index();
        const size_t at = s.find("\"model.norm.weight\": \"model-0000");
        ASSERT_NE(at, std::string::npos);
        std::string t = s;
        const size_t digit = at + std::string("\"model.norm.weight\": \"model-0000").size();
        t[digit] = t[digit] == '1' ? '2' : '1';
        d.set_index(t);
        expect_error<ModelFileError>([&] { load_hf_model(d.dir.string()); }, "the index places it in");
    }
}
