// A decoder that stays on the device: weights, activations, the KV cache,
// positions and the sampled tokens all live in GPU memory for its whole
// life, and one decode step -- embedding of the step's input token, every
// layer, the LM head and a greedy argmax that writes the next input token --
// is one CUDA graph, replayed per step. A step copies nothing to the host
// but the B sampled tokens.
//
// Numerics: the same kernels, GEMM form and rounding points as the checked
// CUDA engine (model/model_cuda.cu) with decode_gqa attention, so its logits
// equal that engine's decode logits bit for bit (tests/test_graph_decoder.cpp
// checks it, and greedy tokens, on the GPU). It carries no mutant, no trace
// and no attention choice: it is the fast path the checked engine vouches for.
//
// Limits: every sequence of the batch advances together, one token per step
// (a prompt is fed one token per step, teacher-forced); at most max_len
// tokens per sequence; production attention (decode_gqa) only.
#pragma once

#include <memory>
#include <vector>

#include "model/model_weights.hpp"

namespace attncheck {

struct GraphDecoderOptions {
    int batch = 1;      // sequences advanced together
    int max_len = 1024; // cache capacity per sequence
    // NaN-poison every activation at the start of each step (inside the
    // graph): a kernel that fails to write its output shows as NaN in the
    // logits. The benchmark turns it off (activations are poisoned once).
    bool poison_each_step = true;
};

class GraphDecoder {
public:
    // Throws ModelError (bad options, bad weights, no CUDA device or no CUDA build).
    GraphDecoder(const ModelWeights& w, const GraphDecoderOptions& o);
    ~GraphDecoder();
    GraphDecoder(const GraphDecoder&) = delete;
    GraphDecoder& operator=(const GraphDecoder&) = delete;

    int batch() const;
    int length() const; // tokens in each sequence's cache
    void reset();       // every sequence back to empty
    // One step with the given input token per sequence (teacher forcing).
    void step(const std::vector<int>& tokens);
    // One step whose input is the previous step's sampled tokens.
    void step_greedy();
    // The last step's argmax per sequence (waits for it); ModelError on NaN logits.
    std::vector<int> sampled();
    // The last step's logits [batch][vocab] (a test hook: a download).
    std::vector<float> logits();
    // Greedy generation: reset, feed the prompts (all of one length), then
    // n_new - 1 greedy steps. Returns [batch][n_new].
    std::vector<std::vector<int>> generate(const std::vector<std::vector<int>>& prompts, int n_new);
    // n greedy steps timed with CUDA events around each graph replay,
    // enqueued back to back; milliseconds per step.
    std::vector<double> timed_greedy_steps(int n);
    // Throws GuardBandError when any buffer's guard band changed.
    void check_guards();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace attncheck
