// Batch validation, attention choice and greedy generation, shared by the
// CPU and CUDA model engines.
#include "engine/model/model_engine.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "engine/target.hpp"

namespace attncheck {

int StepOutput::argmax(size_t row) const {
    const size_t v = rows.empty() ? 0 : logits.size() / rows.size();
    const float* z = &logits[row * v];
    return static_cast<int>(std::max_element(z, z + v) - z);  // first maximum on ties
}

void validate_batch(const ModelEngine& e, const std::vector<SeqChunk>& batch) {
    if (batch.empty()) throw ModelError("model forward: empty batch");
    std::set<int> seen;
    for (const SeqChunk& c : batch) {
        if (c.seq < 0 || c.seq >= e.slots())
            throw ModelError(fmt::format("model forward: sequence slot {} outside [0, {})", c.seq, e.slots()));
        if (!seen.insert(c.seq).second)
            throw ModelError(fmt::format("model forward: sequence slot {} appears twice in one batch", c.seq));
        if (c.tokens.empty()) throw ModelError(fmt::format("model forward: sequence slot {} has an empty chunk", c.seq));
        for (int t : c.tokens)
            if (t < 0 || t >= e.config().vocab)
                throw ModelError(fmt::format("model forward: token {} outside the vocabulary [0, {})", t, e.config().vocab));
    }
}

std::string resolve_attention(const ModelConfig& c, const std::vector<SeqChunk>& batch, const std::string& requested) {
    if (requested != "auto") return requested;
    const bool all_one = std::all_of(batch.begin(), batch.end(), [](const SeqChunk& s) { return s.tokens.size() == 1; });
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

}  // namespace attncheck
