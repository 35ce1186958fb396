// GraphDecoder without the CUDA backend: every entry says so.
#include "model/graph_decoder.hpp"
#include "model/model_engine.hpp"

namespace attncheck {

struct GraphDecoder::Impl {};

GraphDecoder::GraphDecoder(const ModelWeights&, const GraphDecoderOptions&) {
    throw ModelError("graph decoder: the CUDA backend is not built (no nvcc at configure time)");
}
GraphDecoder::~GraphDecoder() = default;
int GraphDecoder::batch() const { return 0; }
int GraphDecoder::length() const { return 0; }
void GraphDecoder::reset() {}
void GraphDecoder::step(const std::vector<int>&) {}
void GraphDecoder::step_greedy() {}
std::vector<int> GraphDecoder::sampled() { return {}; }
std::vector<float> GraphDecoder::logits() { return {}; }
std::vector<std::vector<int>> GraphDecoder::generate(const std::vector<std::vector<int>>&, int) { return {}; }
std::vector<double> GraphDecoder::timed_greedy_steps(int) { return {}; }
void GraphDecoder::check_guards() {}

} // namespace attncheck
