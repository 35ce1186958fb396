// Batch validation, attention choice and greedy generation, shared by the
// CPU and CUDA model engines.
#include "model/model_engine.hpp"
#include "kernels/registry.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "engine/targets/target.hpp"

namespace attncheck {

int StepOutput::argmax(size_t row) const {
    const size_t v = rows.empty() ? 0 : logits.size() / rows.size();
    const float* z = &logits[row * v];
    return static_cast<int>(std::max_element(z, z + v) - z); // first maximum on ties
}

void validate_batch(const ModelEngine& e, const std::vector<SeqChunk>& batch) {
    if (batch.empty()) throw ModelError("model forward: empty batch");
    std::set<int> seen;
    for (const SeqChunk& c : batch) {
        if (c.seq < 0 || c.seq >= e.slots())
            throw ModelError(fmt::format("model forward: sequence slot {} outside [0, {})", c.seq, e.slots()));
        if (!seen.insert(c.seq).second)
            throw ModelError(fmt::format("model forward: sequence slot {} appears twice in one batch", c.seq));
        if (c.tokens.empty())
            throw ModelError(fmt::format("model forward: sequence slot {} has an empty chunk", c.seq));
        for (int t : c.tokens)
            if (t < 0 || t >= e.config().vocab)
                throw ModelError(
                    fmt::format("model forward: token {} outside the vocabulary [0, {})", t, e.config().vocab));
    }
}

std::string resolve_attention(const ModelConfig& c, const std::vector<SeqChunk>& batch, const std::string& requested) {
    if (requested != "auto") return requested;
    const bool all_one =
        std::all_of(batch.begin(), batch.end(), [](const SeqChunk& s) { return s.tokens.size() == 1; });
    if (all_one) return "decode_gqa";
    Case probe;
    probe.head_dim = c.head_dim;
    auto fp = make_target("flash_prefill", Backend::cpu);
    return fp && fp->unsupported(probe).empty() ? "flash_prefill" : "standard_path";
}

std::vector<int> greedy_generate(ModelEngine& e, int seq, const std::vector<int>& prompt, int n_new,
                                 const ForwardOptions& prefill, const ForwardOptions& decode) {
    e.reset(seq);
    std::vector<int> out;
    if (n_new <= 0) return out;
    StepOutput s = e.forward({SeqChunk{seq, prompt}}, prefill);
    out.push_back(s.argmax(s.rows.size() - 1));
    while (static_cast<int>(out.size()) < n_new) {
        s = e.forward({SeqChunk{seq, {out.back()}}}, decode);
        out.push_back(s.argmax(0));
    }
    return out;
}

AttentionProblem attention_problem_for(const ModelEngine& e, const Target& target, DType dtype,
                                       const std::vector<SeqChunk>& batch, int num_splits) {
    const ModelConfig& c = e.config();
    AttentionProblem pb;
    pb.n_q_heads = c.n_q_heads;
    pb.n_kv_heads = c.n_kv_heads;
    pb.head_dim = c.head_dim;
    pb.causal = true;
    pb.num_splits = num_splits;
    pb.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    pb.dtype = dtype;
    long long qs = 0, ks = 0;
    for (const SeqChunk& ch : batch) {
        const int n = static_cast<int>(ch.tokens.size());
        pb.q_lens.push_back(n);
        pb.kv_lens.push_back(e.cache_len(ch.seq) + n);
        pb.q_start.push_back(qs);
        pb.kv_start.push_back(ks);
        qs += n;
        ks += e.cache_len(ch.seq) + n;
    }
    if (std::string why = target.unsupported(shape_of(pb)); !why.empty())
        throw ModelError(fmt::format("{}: attention {} refuses this call: {}", e.name(), target.name(), why));
    pb.q.assign(static_cast<size_t>(qs) * c.q_dim(), 0.0f);
    pb.k.assign(static_cast<size_t>(ks) * c.kv_dim(), 0.0f);
    pb.v.assign(static_cast<size_t>(ks) * c.kv_dim(), 0.0f);
    return pb;
}

} // namespace attncheck
