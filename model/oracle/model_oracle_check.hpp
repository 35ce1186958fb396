// The model's error model and the per-layer divergence report.
//
// Two bounds, both built stage by stage from the rounding points of the
// engines (model/model_cpu.hpp) and derived in
// docs/model-error-model.md:
//
//  - the a-priori bound: what any implementation with this precision may be
//    off from the oracle, propagated through the whole forward with
//    worst-case (componentwise, |W|-weighted) sensitivities. Rigorous but
//    it grows with depth (about a factor sqrt(n) per GEMM over the typical
//    error); it is what a comparison of final outputs alone (transformers'
//    logits, old cache entries) can use.
//  - the observed bound, for a traced engine call: each stage's output may
//    differ from the oracle's by its own rounding (on the engine's actual
//    input) plus the stage's sensitivity times the error the engine's input
//    to that stage actually had. It does not compound with depth, and a bug
//    shows up at the stage where it happens: everything before it is within
//    its bound, and the buggy stage's error is far outside its own.
//
// The report walks layers and stages in forward order and names the first
// (layer, stage) with an element outside its bound, with the numbers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"
#include "model/model_trace.hpp"
#include "model/model_weights.hpp"
#include "model/oracle/model_oracle.hpp"

namespace attncheck {

struct ModelPrecision {
    DType store = DType::f32;  // activations stored in T (the config dtype)
    double u_gemm = 0x1p-24;   // GEMM accumulation (tensor cores may truncate: 2^-23)
    double u_elem = 0x1p-24;   // elementwise fp32 arithmetic
    double rope_angle_rel = 0; // relative error of the RoPE angle (ours: fp64 angles, 0)
    PrecisionProfile attn;     // attention, for the a-priori bound (rounds at least as much as any family)
    int attn_splits = 1;
};

// Our engines on a backend.
ModelPrecision model_precision(const ModelConfig& c, Backend b);
// transformers' fp32 eager forward: fp32 everywhere, RoPE angles computed
// in fp32 (inv_freq = 1/theta^(i/d) and pos * inv_freq, each a few ulps).
ModelPrecision transformers_fp32_precision(const ModelConfig& c);

// Precision profile of transformers' eager fp32 attention (matmul, fp32
// softmax, matmul; a CPU SDPA fallback tiles keys: covered by the tile term).
PrecisionProfile transformers_fp32_attention_profile();

// A trace recorded outside this program (transformers, via forward hooks)
// as JSON: {"tokens": [...], "embed": [[...]], "layers": [{"attn_norm":
// [[...]], "q": ..., "k": ..., "v": ..., "q_rope": ..., "k_rope": ...,
// "attn_out": ..., "o_proj": ..., "resid_attn": ..., "ffn_norm": ...,
// "gate": ..., "up": ..., "act": ..., "down": ..., "resid_ffn": ...}, ...],
// "final_norm": [[...]], "logits": [[...]]}, every stage [token][width].
// Builds the ModelTrace (one sequence, slot 0, positions 0..n-1; the
// attention problems from q_rope / k_rope / v) checked with `prof`.
// Throws std::invalid_argument naming the first missing or misshapen entry.
ModelTrace trace_from_json(const ModelConfig& c, const std::string& json_text, const PrecisionProfile& prof,
                           std::vector<int>* tokens);

// The inverse, for one-sequence traces (tests, and exporting our engine's trace).
std::string trace_to_json(const ModelConfig& c, const ModelTrace& t, const std::vector<int>& tokens);

// A-priori bounds for every stage of every position of one sequence (same
// layout as the oracle trace; kv_cache empty).
OracleTrace apriori_bounds(const ModelWeights& w, const OracleTrace& o, const ModelPrecision& p);

struct StageCheck {
    int layer = 0; // -1: embedding; layers: final norm / logits
    Stage stage = Stage::embed;
    long long elements = 0, violations = 0, unchecked = 0; // unchecked: bound infinite (no meaningful bound)
    double worst_ratio = 0;                                // max |engine - oracle| / bound over checked elements
    // The worst element (first violation's row if any).
    int seq = -1, pos = -1, index = -1;
    double engine = 0, oracle = 0, bound = 0;
};

struct DivergenceReport {
    bool ok = true;
    std::optional<StageCheck> first; // first (layer, stage) out of bound, forward order
    std::vector<StageCheck> stages;  // every stage checked, forward order
    long long unchecked = 0;
    // The observed bound of every stage for the call's rows (same layout as
    // ModelTrace values), for differential checks between two engine calls:
    // |A - B| <= bound_A + bound_B whenever both are within their bounds.
    int layers = 0;
    std::vector<std::vector<double>> bounds;
    const std::vector<double>& bound(int layer, Stage s) const {
        return bounds[static_cast<size_t>(stage_is_global(s) ? layers : layer) * kStages + static_cast<int>(s)];
    }
    std::string summary() const; // one paragraph
    std::string table() const;   // per layer: worst ratio per stage
};

// The bound each cached K/V position was appended under: the observed
// bound of k_rope / v in the call that computed it. With a ledger,
// check_forward judges cached positions of earlier calls by it (tight);
// without one, by the a-priori bound (loose beyond the first layer, so
// there mostly "unchecked").
struct CacheLedger {
    std::map<int, std::vector<std::vector<double>>> k, v; // slot -> layer -> [position][kv_dim]
    void record(const ModelConfig& c, const ModelTrace& t, const DivergenceReport& r);
    void reset(int slot) {
        k.erase(slot);
        v.erase(slot);
    }
};

// Compares a traced engine call with the oracle of each sequence it touched
// (oracle_by_slot[slot] = the oracle recomputed over the slot's whole token
// history) under the observed bound; the kv_cache stage checks every cached
// position (rows of this call under the observed bound of k_rope / v, older
// positions under the a-priori bound).
DivergenceReport check_forward(const ModelWeights& w, const ModelTrace& engine,
                               const std::map<int, const OracleTrace*>& oracle_by_slot, const ModelPrecision& p,
                               const CacheLedger* ledger = nullptr);

// Greedy agreement: where the oracle's top logit beats every other by more
// than both bounds, any implementation within the bound picks the same token.
bool greedy_decided(const double* logits, const double* bound, int vocab, int* top = nullptr);

} // namespace attncheck
