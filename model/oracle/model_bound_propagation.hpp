// The bound propagation behind model_oracle_check.hpp, shared by its
// translation units: one walk through the decoder's stages (propagate,
// model_stage_bounds.cpp) that turns each stage's input error into a bound on
// its output, fed by a Source of input errors -- the bound itself for the
// a-priori bound, the engine's actual error for the observed bound
// (model_bound_sources.cpp). Internal to model/oracle/.
#pragma once

#include <cstddef>
#include <limits>
#include <vector>

#include "model/oracle/model_oracle_check.hpp"

namespace attncheck::model_bounds {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Rows are (oracle trace, position).
struct Row {
    const OracleTrace* o;
    int pos;
};

class Source {
public:
    virtual ~Source() = default;
    // |error| of the values of (layer, stage) for row r, given B (the bound
    // of that stage computed so far, [rows][width]).
    virtual void err(int l, Stage s, int r, const std::vector<double>& B, int width, double* out) = 0;
    // |error| of k_rope (v = false) or v (v = true) of key j of row r's sequence.
    virtual void cache_err(int l, int r, int j, bool v, double* out) = 0;
    // The attention family's own rounding bound for row r, q head h.
    virtual void attn_local(int l, int r, int h, double* out) = 0;
};

using Bounds = std::vector<std::vector<double>>; // [slot * kStages + stage][rows * width]

// Index of (layer, stage) in Bounds (global stages after the layers).
inline std::size_t bounds_index(const ModelConfig& c, int layer, Stage s) {
    return static_cast<std::size_t>(stage_is_global(s) ? c.layers : layer) * kStages + static_cast<int>(s);
}

// B is filled stage by stage (a source may read the stages already done).
void propagate(const ModelWeights& w, const std::vector<Row>& rows, const ModelPrecision& P, Source& src, Bounds& B);

// The observed bound of a traced engine call: every stage's input error is
// the engine's actual error against the oracle of its row.
Bounds observed_bounds(const ModelWeights& w, const ModelTrace& engine, const std::vector<Row>& rows,
                       const ModelPrecision& P);

} // namespace attncheck::model_bounds
