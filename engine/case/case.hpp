// The Case: a complete, serializable description of one attention run.
//
// Generators, fuzz decoders, corpus files and the command line all produce a
// Case; a Case written as JSON and read back materializes to the same bits on
// any machine (see rng.hpp, dtype.hpp). Field meanings and conventions are in
// docs/case-format.md; the rules enforced by validate() are listed there too.
//
// Layout conventions (fixed project-wide):
//   - tensors are packed "varlen": Q is [sum(q_lens)][n_q_heads][head_dim],
//     K and V are [sum(kv_lens)][n_kv_heads][head_dim], sequences one after
//     another in batch order;
//   - causal masks are aligned bottom-right: query i of a sequence sits at
//     absolute position kv_len - q_len + i and sees keys j <= that position;
//     with q_len > kv_len the first q_len - kv_len queries see nothing;
//   - a sliding window w >= 1 (causal only) additionally hides keys
//     j <= position - w: each query sees at most its last w keys;
//   - GQA: kv_head = q_head / (n_q_heads / n_kv_heads);
//   - a fully masked row has O = 0 and LSE = -inf;
//   - the default scale is 1/sqrt(head_dim).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/case/dtype.hpp"

namespace attncheck {

// Thrown for any invalid case; the message names the field and the rule.
struct CaseError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class Dist { normal, uniform, sparse_int };
const char* dist_name(Dist d);

enum class TensorId { q, k, v };
const char* tensor_name(TensorId t);

// One non-finite or chosen value placed at an exact element after the recipe
// has generated the tensor.
struct SpecialValue {
    TensorId tensor = TensorId::q;
    int seq = 0, token = 0, head = 0, dim = 0; // token is within the sequence
    double value = 0.0;                        // may be NaN or +-inf
    bool operator==(const SpecialValue&) const;
};

struct DataRecipe {
    Dist dist = Dist::normal;
    std::uint64_t seed = 0;
    // Per-tensor magnitude multipliers.
    double q_scale = 1.0, k_scale = 1.0, v_scale = 1.0;
    // Massive-activation channels: these head_dim channels of Q and K are
    // multiplied by outlier_factor.
    std::vector<int> outlier_channels;
    double outlier_factor = 1.0;
    // Attention sinks: the first sink_tokens keys of every sequence are
    // replaced by sink_factor * c (c a fixed random +-k_scale vector per kv
    // head), and every query gets q_scale * c added, so sinks draw large
    // positive logits, as in real models.
    int sink_tokens = 0;
    double sink_factor = 1.0;
    // Per-channel bias added to every token (Qwen-style Q/K bias): bias * r,
    // r a fixed N(0,1) vector per head.
    double q_bias = 0.0, k_bias = 0.0;
    // Tensors whose rows are all the same within a (sequence, head).
    bool constant_q = false, constant_k = false, constant_v = false;
    std::vector<SpecialValue> specials;
    bool operator==(const DataRecipe&) const;
};

// Explicit values replace the recipe (then only specials may be added).
struct ExplicitValues {
    std::vector<double> q, k, v;
    bool operator==(const ExplicitValues&) const;
};

struct Case {
    // shape
    int n_q_heads = 1, n_kv_heads = 1, head_dim = 1;
    std::vector<int> q_lens{1}, kv_lens{1}; // one entry per sequence
    // features
    bool causal = false;
    int window = 0;     // 0: no sliding window
    int num_splits = 1; // split-KV partition count, for targets that split
    // Paged KV cache (0: contiguous). With page_size > 0, targets that page
    // read K and V through a block table from a pool of pages whose order
    // page_seed draws (engine/case/paged_kv.hpp); the values are the same
    // either way, so the oracle never sees the layout.
    int page_size = 0;
    std::uint64_t page_seed = 0;
    std::optional<double> scale; // absent: 1/sqrt(head_dim)
    DType dtype = DType::f32;
    DataRecipe data;
    std::optional<ExplicitValues> values;

    int batch() const { return static_cast<int>(q_lens.size()); }
    double effective_scale() const;
    bool operator==(const Case&) const;
};

// Hard limits a case must respect. They keep a malformed or hostile case
// from exhausting memory; generators stay far below them.
struct CaseLimits {
    static constexpr int max_batch = 4096;
    static constexpr int max_heads = 1024;
    static constexpr int max_head_dim = 1024;
    static constexpr int max_len = 1 << 20;
    static constexpr long long max_elements = 1LL << 28; // per tensor
    static constexpr int max_splits = 4096;
    static constexpr int max_page_size = 1 << 16;
};

// Throws CaseError naming the first rule broken.
void validate(const Case& c);

// Upper bound on |value| the recipe can produce for tensor t (used to reject
// recipes that would overflow the dtype before anything is generated).
double recipe_max_abs(const Case& c, TensorId t);

// JSON (text). parse_case validates; to_json writes every field, so
// to_json(parse_case(to_json(c))) == to_json(c).
std::string case_to_json(const Case& c, int indent = 2);
Case parse_case(const std::string& json_text);
Case load_case_file(const std::string& path);
void save_case_file(const Case& c, const std::string& path);

} // namespace attncheck
