// GraphDecoder (see graph_decoder.hpp): construction uploads the weights,
// allocates every buffer once (guarded, poisoned), builds the RoPE tables for
// all max_len positions, and captures one decode step on a private stream
// into a CUDA graph. The step reads the input tokens and the cache lengths
// from device memory and advances the lengths itself, so replaying the same
// graph walks the sequences forward; the host only counts steps to refuse
// one past max_len.
//
// The step, as captured (B = batch, every kernel on the private stream):
//   [poison activations] -> pos = len, len += 1 ->
//   embed(tokens), RMSNorm -> per layer: QKV GEMM, bias + split + RoPE +
//   K/V appended at pos (one kernel), decode_gqa over len keys, O GEMM, residual + RMSNorm
//   (one kernel), gate and up GEMMs, SiLU*up, down GEMM, residual + the next
//   RMSNorm (the next layer's, or the final one) -> LM head GEMM -> argmax
//   into tokens -> copy of tokens to pinned host.
// The fused kernels (model_kernels.cuh) round exactly where the checked
// engine's separate kernels do; the launches they save are most of a step
// at batch 1, where every kernel is a few microseconds.
// cuBLAS runs on its own handle bound to the stream, with a workspace given
// up front (a captured GEMM must not allocate).
#include "model/graph_decoder.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/cuda/check.cuh"
#include "engine/cuda/device.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "kernels/common/decode_rules.hpp"
#include "kernels/decode_gqa/decode_gqa_on_device.hpp"
#include "model/model_device.cuh"
#include "model/model_engine.hpp"
#include "model/model_kernels.cuh"
#include "model/model_mutant.hpp"
#include "model/rope.hpp"

namespace attncheck {

using model_device::Bytes;
using model_device::esize;

namespace {
// cuBLAS's own default on Hopper; the same size keeps its kernel choice.
constexpr size_t kCublasWorkspace = 32u << 20;
} // namespace

struct GraphDecoder::Impl {
    ModelConfig c;
    GraphDecoderOptions o;
    model_device::WeightsOnDevice w;
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    DeviceBuffer<unsigned char> workspace;
    Bytes h, xn, qr, ao, a;
    DeviceBuffer<float> acc, acc_up, logits, lse, cos_tab, sin_tab, argmax_v;
    DeviceBuffer<int> len, pos, tokens, q_start, kv_start, q_lens, heads, argmax_i;
    std::vector<Bytes> k_cache, v_cache; // per layer, [batch][max_len][kv_dim]
    int* host_in = nullptr;              // pinned [batch]
    int* host_out = nullptr;             // pinned [batch]
    cudaGraphExec_t exec = nullptr;
    int steps = 0; // tokens in each sequence's cache
    bool has_step = false;
    struct ReleaseGuard {
        Impl* m;
        ~ReleaseGuard() { m->release(); }
    } release_guard{this}; // declared last: destroyed first

    Impl(const ModelWeights& weights, const GraphDecoderOptions& opt) : c(weights.config), o(opt), w(weights) {
        const int B = o.batch, H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn;
        const size_t es = esize(c.dtype), b = static_cast<size_t>(B);
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&blas));
        CUBLAS_CHECK(cublasSetStream(blas, stream));
        CUBLAS_CHECK(cublasSetMathMode(
            blas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
        CUBLAS_CHECK(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST));
        workspace = DeviceBuffer<unsigned char>(kCublasWorkspace, "cublas_workspace");
        CUBLAS_CHECK(cublasSetWorkspace(blas, workspace.get(), workspace.bytes()));

        auto act = [&](size_t n, const char* name) { return Bytes(n * es, name); };
        h = act(b * H, "h"), xn = act(b * H, "xn"), qr = act(b * QD, "q_rope"), ao = act(b * QD, "attn_out"),
        a = act(b * F, "act");
        acc = DeviceBuffer<float>(b * std::max({c.qkv_dim(), H, F}), "gemm_acc");
        acc_up = DeviceBuffer<float>(b * F, "gemm_acc_up");
        const size_t scratch = static_cast<size_t>(model_kernels::argmax_scratch(B, c.vocab));
        argmax_v = DeviceBuffer<float>(scratch, "argmax_v");
        argmax_i = DeviceBuffer<int>(scratch, "argmax_i");
        logits = DeviceBuffer<float>(b * c.vocab, "logits");
        lse = DeviceBuffer<float>(b * c.n_q_heads, "lse");
        poison_outputs(cudaStreamPerThread);

        // RoPE cos/sin for every position a sequence can reach, as the
        // checked engine builds them per call.
        {
            std::vector<std::pair<int, int>> rows;
            for (int p = 0; p < o.max_len; ++p) rows.push_back({0, p});
            std::vector<float> cv, sv;
            rope_tables(rope_config(c, ModelMutant::none), rows, cv, sv);
            cos_tab = DeviceBuffer<float>(cv.size(), "rope_cos");
            sin_tab = DeviceBuffer<float>(sv.size(), "rope_sin");
            cos_tab.upload(cv);
            sin_tab.upload(sv);
        }
        std::vector<int> qs(b), ks(b), ql(b, 1);
        for (int i = 0; i < B; ++i) {
            qs[static_cast<size_t>(i)] = i;
            ks[static_cast<size_t>(i)] = i * o.max_len;
        }
        auto ints = [&](const std::vector<int>& x, const char* name) {
            DeviceBuffer<int> d(x.size(), name);
            d.upload(x);
            return d;
        };
        len = ints(std::vector<int>(b, 0), "len");
        pos = ints(std::vector<int>(b, 0), "pos");
        tokens = ints(std::vector<int>(b, 0), "tokens");
        q_start = ints(qs, "q_start");
        kv_start = ints(ks, "kv_start");
        q_lens = ints(ql, "q_lens");
        heads = ints(kernels::decode_gqa_group_heads(shape()), "group_heads");
        const size_t cache_bytes = b * static_cast<size_t>(o.max_len) * KD * es;
        for (int l = 0; l < c.layers; ++l) {
            k_cache.emplace_back(cache_bytes, fmt::format("k_cache.layer{}", l));
            v_cache.emplace_back(cache_bytes, fmt::format("v_cache.layer{}", l));
            k_cache.back().poison();
            v_cache.back().poison();
        }
        CUDA_CHECK(cudaMallocHost(&host_in, b * sizeof(int)));
        CUDA_CHECK(cudaMallocHost(&host_out, b * sizeof(int)));
        // Everything above ran on this thread's default stream; the graph
        // runs on `stream`.
        CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread));
        capture();
    }

    // Runs first when an Impl goes, and also when its constructor throws
    // half way (release_guard is its last member): nothing may still run on
    // the buffers freed after it, and the raw handles go with it.
    void release() {
        if (stream) cudaStreamSynchronize(stream);
        if (exec) cudaGraphExecDestroy(exec);
        if (blas) cublasDestroy(blas);
        if (stream) cudaStreamDestroy(stream);
        if (host_in) cudaFreeHost(host_in);
        if (host_out) cudaFreeHost(host_out);
    }

    std::vector<Bytes*> activations() { return {&h, &xn, &qr, &ao, &a}; }

    // NaN into everything a step writes before it reads (not the caches,
    // whose stale rows beyond len are never read).
    void poison_outputs(cudaStream_t st) {
        for (Bytes* x : activations()) CUDA_CHECK(cudaMemsetAsync(x->get(), kPoisonByte, x->bytes(), st));
        for (DeviceBuffer<float>* x : {&acc, &acc_up, &logits, &lse})
            CUDA_CHECK(cudaMemsetAsync(x->get(), kPoisonByte, x->bytes(), st));
    }

    kernels::AttnShape shape() const {
        return {o.batch,
                c.n_q_heads,
                c.n_kv_heads,
                c.head_dim,
                1,
                0,
                static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)))};
    }

    void gemm(const Bytes& W, int out, int in, const void* X, float* Y) {
        model_device::gemm(blas, c.dtype, W.get(), out, in, X, o.batch, Y);
    }

    void record_step() {
        using namespace model_kernels;
        const cudaStream_t st = stream;
        const DType T = c.dtype;
        const int B = o.batch, H = c.hidden, QD = c.q_dim(), F = c.ffn, hd = c.head_dim;
        const long long b = B;
        const float eps = static_cast<float>(c.rms_eps);
        const int pairing = c.rope_pairing == RopePairing::rotate_half ? 0 : 1;
        if (o.poison_each_step) poison_outputs(st);
        begin_step(len.get(), pos.get(), B, st);
        embed_gather(T, tokens.get(), B, w.embed.get(), H, h.get(), st);
        rmsnorm(T, h.get(), w.layers.front().attn_norm.get(), B, H, eps, xn.get(), st);
        for (int l = 0; l < c.layers; ++l) {
            const model_device::LayerOnDevice& L = w.layers[static_cast<size_t>(l)];
            // xn holds this layer's attention-norm output (the previous
            // layer's fused residual + norm, or the line above).
            gemm(L.wqkv, c.qkv_dim(), H, xn.get(), acc.get());
            qkv_rope_append(T, acc.get(), c.qkv_bias ? L.bqkv.get() : nullptr, B, c.n_q_heads, c.n_kv_heads, hd,
                            pairing, cos_tab.get(), sin_tab.get(), pos.get(), o.max_len, qr.get(),
                            k_cache[static_cast<size_t>(l)].get(), v_cache[static_cast<size_t>(l)].get(), st);
            kernels::decode_gqa_on_stream(
                T,
                {shape(), qr.get(), k_cache[static_cast<size_t>(l)].get(), v_cache[static_cast<size_t>(l)].get(),
                 ao.get(), lse.get(), q_start.get(), kv_start.get(), q_lens.get(), len.get(), heads.get()},
                st);
            gemm(L.wo, H, QD, ao.get(), acc.get());
            residual_rmsnorm(T, acc.get(), h.get(), L.ffn_norm.get(), B, H, eps, xn.get(), st);
            model_device::gemm_pair(blas, T, L.w_gate.get(), acc.get(), L.w_up.get(), acc_up.get(), F, H, xn.get(), B);
            silu_mul_acc(T, acc.get(), acc_up.get(), b * F, a.get(), st);
            gemm(L.w_down, H, F, a.get(), acc.get());
            const Bytes& next_norm = l + 1 < c.layers ? w.layers[static_cast<size_t>(l) + 1].attn_norm : w.final_norm;
            residual_rmsnorm(T, acc.get(), h.get(), next_norm.get(), B, H, eps, xn.get(), st);
        }
        gemm(w.head(), c.vocab, H, xn.get(), logits.get());
        argmax_rows(logits.get(), B, c.vocab, argmax_v.get(), argmax_i.get(), tokens.get(), st);
        CUDA_CHECK(cudaMemcpyAsync(host_out, tokens.get(), b * sizeof(int), cudaMemcpyDeviceToHost, st));
    }

    void capture() {
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        cudaGraph_t graph = nullptr;
        try {
            record_step();
        } catch (...) {
            cudaStreamEndCapture(stream, &graph); // leave the stream usable, then report the first error
            if (graph) cudaGraphDestroy(graph);
            throw;
        }
        CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        CUDA_CHECK(e);
    }

    void launch() {
        if (steps >= o.max_len)
            throw ModelError(
                fmt::format("graph decoder: step {} past the cache capacity max_len = {}", steps + 1, o.max_len));
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        ++steps;
        has_step = true;
    }
};

GraphDecoder::GraphDecoder(const ModelWeights& w, const GraphDecoderOptions& o) {
    validate(w);
    if (o.batch < 1 || o.batch > 4096)
        throw ModelError(fmt::format("graph decoder: batch {} outside [1, 4096]", o.batch));
    if (o.max_len < 1 || o.max_len > (1 << 20))
        throw ModelError(fmt::format("graph decoder: max_len {} outside [1, 2^20]", o.max_len));
    if (static_cast<long long>(o.batch) * o.max_len > (1LL << 31) - 1)
        throw ModelError("graph decoder: batch * max_len does not fit the attention's 32-bit key offsets");
    if (w.config.head_dim > kernels::kDecodeMaxHeadDim)
        throw ModelError(fmt::format("graph decoder: head_dim {} above decode_gqa's {}", w.config.head_dim,
                                     kernels::kDecodeMaxHeadDim));
    std::string why;
    if (!cuda_device_available(&why)) throw ModelError("graph decoder: " + why);
    impl_ = std::make_unique<Impl>(w, o);
}

GraphDecoder::~GraphDecoder() = default;

int GraphDecoder::batch() const { return impl_->o.batch; }
int GraphDecoder::length() const { return impl_->steps; }

void GraphDecoder::reset() {
    CUDA_CHECK(cudaMemsetAsync(impl_->len.get(), 0, impl_->len.bytes(), impl_->stream));
    CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
    impl_->steps = 0;
    impl_->has_step = false;
}

void GraphDecoder::step(const std::vector<int>& toks) {
    Impl& m = *impl_;
    if (static_cast<int>(toks.size()) != m.o.batch)
        throw ModelError(fmt::format("graph decoder: {} tokens for a batch of {}", toks.size(), m.o.batch));
    for (int t : toks)
        if (t < 0 || t >= m.c.vocab)
            throw ModelError(fmt::format("graph decoder: token {} outside the vocabulary [0, {})", t, m.c.vocab));
    // The previous step's copy from host_in may still be queued.
    CUDA_CHECK(cudaStreamSynchronize(m.stream));
    std::copy(toks.begin(), toks.end(), m.host_in);
    CUDA_CHECK(cudaMemcpyAsync(m.tokens.get(), m.host_in, toks.size() * sizeof(int), cudaMemcpyHostToDevice, m.stream));
    m.launch();
}

void GraphDecoder::step_greedy() {
    if (!impl_->has_step) throw ModelError("graph decoder: a greedy step needs a previous step's token");
    impl_->launch();
}

std::vector<int> GraphDecoder::sampled() {
    Impl& m = *impl_;
    if (!m.has_step) throw ModelError("graph decoder: no step has run");
    CUDA_CHECK(cudaStreamSynchronize(m.stream));
    std::vector<int> out(m.host_out, m.host_out + m.o.batch);
    for (size_t i = 0; i < out.size(); ++i)
        if (out[i] < 0)
            throw ModelError(fmt::format("graph decoder: NaN in the logits of sequence {} at step {}", i, m.steps));
    return out;
}

std::vector<float> GraphDecoder::logits() {
    CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
    return impl_->logits.download();
}

std::vector<std::vector<int>> GraphDecoder::generate(const std::vector<std::vector<int>>& prompts, int n_new) {
    Impl& m = *impl_;
    if (static_cast<int>(prompts.size()) != m.o.batch)
        throw ModelError(fmt::format("graph decoder: {} prompts for a batch of {}", prompts.size(), m.o.batch));
    const size_t n = prompts.front().size();
    for (const auto& p : prompts)
        if (p.empty() || p.size() != n) throw ModelError("graph decoder: prompts must be non-empty and of one length");
    reset();
    std::vector<std::vector<int>> out(prompts.size());
    for (size_t i = 0; i < n; ++i) {
        std::vector<int> col;
        for (const auto& p : prompts) col.push_back(p[i]);
        step(col);
    }
    for (int t = 0; t < n_new; ++t) {
        if (t > 0) step_greedy();
        const std::vector<int> s = sampled();
        for (size_t b = 0; b < out.size(); ++b) out[b].push_back(s[b]);
    }
    return out;
}

std::vector<double> GraphDecoder::timed_greedy_steps(int n) {
    Impl& m = *impl_;
    std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(n), nullptr);
    std::vector<double> ms(static_cast<size_t>(n));
    try {
        for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
        for (int i = 0; i < n; ++i) {
            CUDA_CHECK(cudaEventRecord(ev[2 * static_cast<size_t>(i)], m.stream));
            step_greedy();
            CUDA_CHECK(cudaEventRecord(ev[2 * static_cast<size_t>(i) + 1], m.stream));
        }
        CUDA_CHECK(cudaStreamSynchronize(m.stream));
        for (int i = 0; i < n; ++i) {
            float t = 0.0f;
            CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * static_cast<size_t>(i)], ev[2 * static_cast<size_t>(i) + 1]));
            ms[static_cast<size_t>(i)] = t;
        }
    } catch (...) {
        for (auto& e : ev)
            if (e) cudaEventDestroy(e);
        throw;
    }
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
    return ms;
}

void GraphDecoder::check_guards() {
    Impl& m = *impl_;
    CUDA_CHECK(cudaStreamSynchronize(m.stream));
    std::vector<GuardRegion> r = m.w.guards();
    for (Bytes* x : m.activations()) r.push_back(x->guards());
    for (const DeviceBuffer<float>* x : {&m.acc, &m.acc_up, &m.logits, &m.lse, &m.cos_tab, &m.sin_tab, &m.argmax_v})
        r.push_back(x->guards());
    for (const DeviceBuffer<int>* x :
         {&m.len, &m.pos, &m.tokens, &m.q_start, &m.kv_start, &m.q_lens, &m.heads, &m.argmax_i})
        r.push_back(x->guards());
    for (size_t l = 0; l < m.k_cache.size(); ++l) {
        r.push_back(m.k_cache[l].guards());
        r.push_back(m.v_cache[l].guards());
    }
    r.push_back(m.workspace.guards());
    check_guard_bands(r);
}

} // namespace attncheck
