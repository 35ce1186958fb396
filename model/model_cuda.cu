// The CUDA decoder's host side: weights upload, per-call activation
// buffers, cuBLAS GEMMs, the KV cache, and the hand-off to the CUDA
// attention targets (see model_cuda.hpp for the numerics and the known
// limit). Every CUDA and cuBLAS call is checked; activations are poisoned
// before use and every buffer's guard bands are checked after each call.
#include "kernels/registry.hpp"
#include "model/model_cuda.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "engine/cuda/check.cuh"
#include "engine/cuda/cublas_handle.hpp"
#include "engine/cuda/device.hpp"
#include "engine/cuda/device_buffer.cuh"
#include "engine/targets/target.hpp"
#include "model/model_device.cuh"
#include "model/model_kernels.cuh"
#include "model/rope.hpp"

namespace attncheck {

namespace {

using model_device::Bytes;
using model_device::esize;
using model_device::from_bytes;
using model_device::to_bytes;

class CudaModel final : public ModelEngine {
public:
    CudaModel(const ModelWeights& w, int slots, ModelMutant m) : w_(checked(w, slots)), m_(m), dw_(w_) {
        const ModelConfig& c = w_.config;
        blas_ = thread_cublas_handle();
        cache_.resize(static_cast<size_t>(slots));
        for (auto& s : cache_) {
            s.k.resize(static_cast<size_t>(c.layers));
            s.v.resize(static_cast<size_t>(c.layers));
        }
    }
    const ModelConfig& config() const override { return w_.config; }
    std::string name() const override {
        return m_ == ModelMutant::none ? "cuda/model" : std::string("cuda/model+") + model_mutant_name(m_);
    }
    int slots() const override { return static_cast<int>(cache_.size()); }
    int cache_len(int seq) const override { return cache_.at(static_cast<size_t>(seq)).len; }
    void reset(int seq) override {
        Slot& s = cache_.at(static_cast<size_t>(seq));
        s.len = 0; // capacity kept; stale contents beyond len are never read
    }
    StepOutput forward(const std::vector<SeqChunk>& batch, const ForwardOptions& opt) override;

private:
    static const ModelWeights& checked(const ModelWeights& w, int slots) {
        validate(w);
        std::string why;
        if (!cuda_device_available(&why)) throw ModelError("cuda model: " + why);
        if (slots < 1 || slots > 4096)
            throw ModelError(fmt::format("cuda model: {} sequence slots outside [1, 4096]", slots));
        return w;
    }
    struct Slot {
        int len = 0, cap = 0;
        std::vector<Bytes> k, v; // per layer, [cap][kv_dim] in T
    };

    void gemm(const Bytes& W, int out, int in, const void* X, int rows, float* Y) {
        model_device::gemm(blas_, w_.config.dtype, W.get(), out, in, X, rows, Y);
    }
    void ensure_capacity(Slot& s, int need) {
        if (need <= s.cap) return;
        const int cap = std::max(need, std::max(16, 2 * s.cap));
        const size_t row = static_cast<size_t>(w_.config.kv_dim()) * esize(w_.config.dtype);
        for (int l = 0; l < w_.config.layers; ++l)
            for (auto* vec : {&s.k, &s.v}) {
                Bytes nb(static_cast<size_t>(cap) * row, fmt::format("kv_cache.layer{}", l));
                nb.poison();
                if (s.len > 0)
                    CUDA_CHECK(cudaMemcpy(nb.get(), (*vec)[static_cast<size_t>(l)].get(),
                                          static_cast<size_t>(s.len) * row, cudaMemcpyDeviceToDevice));
                (*vec)[static_cast<size_t>(l)] = std::move(nb);
            }
        s.cap = cap;
    }

    ModelWeights w_;
    ModelMutant m_;
    model_device::WeightsOnDevice dw_;
    cublasHandle_t blas_ = nullptr;
    std::vector<Slot> cache_;
};

StepOutput CudaModel::forward(const std::vector<SeqChunk>& batch, const ForwardOptions& opt) {
    validate_batch(*this, batch);
    const ModelConfig& c = w_.config;
    const DType T = c.dtype;
    const size_t es = esize(T);
    const std::string attn_name = resolve_attention(c, batch, opt.attention);
    auto target = make_target(attn_name, Backend::cuda);
    if (!target) throw ModelError(fmt::format("cuda model: unknown attention family \"{}\"", attn_name));

    StepOutput out;
    out.attention = attn_name;
    std::vector<int> tokens;
    for (const SeqChunk& ch : batch)
        for (size_t i = 0; i < ch.tokens.size(); ++i) {
            out.rows.push_back({ch.seq, cache_len(ch.seq) + static_cast<int>(i)});
            tokens.push_back(ch.tokens[i]);
        }
    const int R = static_cast<int>(out.rows.size());
    const int H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn, hd = c.head_dim, half = hd / 2;
    if (opt.trace) out.trace.emplace().init(c, out.rows);

    AttentionProblem pb = attention_problem_for(*this, *target, T, batch, opt.num_splits);
    for (const SeqChunk& ch : batch)
        ensure_capacity(cache_[static_cast<size_t>(ch.seq)], cache_len(ch.seq) + static_cast<int>(ch.tokens.size()));

    // Per-call buffers, poisoned: anything a kernel fails to write stays NaN.
    DeviceBuffer<int> d_tok(static_cast<size_t>(R), "tokens");
    d_tok.upload(tokens);
    auto act = [&](size_t n, const char* name) {
        Bytes b(n * es, name);
        b.poison();
        return b;
    };
    auto f32 = [&](size_t n, const char* name) {
        DeviceBuffer<float> b(n, name);
        b.poison();
        return b;
    };
    const size_t r = static_cast<size_t>(R);
    Bytes h = act(r * H, "h"), xn = act(r * H, "xn"), q = act(r * QD, "q"), k = act(r * KD, "k"), v = act(r * KD, "v"),
          qr = act(r * QD, "q_rope"), kr = act(r * KD, "k_rope"), ao = act(r * QD, "attn_out"),
          o = act(r * H, "o_proj"), g = act(r * F, "gate"), u = act(r * F, "up"), a = act(r * F, "act"),
          dn = act(r * H, "down");
    DeviceBuffer<float> acc = f32(r * std::max({c.qkv_dim(), H, F}), "gemm_acc");
    DeviceBuffer<float> logits = f32(r * c.vocab, "logits");
    DeviceBuffer<float> d_cos(r * half, "rope_cos"), d_sin(r * half, "rope_sin");
    {
        std::vector<float> cv, sv;
        rope_tables(rope_config(c, m_), out.rows, cv, sv);
        d_cos.upload(cv);
        d_sin.upload(sv);
    }
    auto rec = [&](int layer, Stage s, const Bytes& b) {
        if (out.trace) out.trace->at(layer, s) = from_bytes(T, b.download());
    };
    const cudaStream_t st = nullptr; // default stream; cuBLAS uses it too
    const int pairing = (c.rope_pairing == RopePairing::rotate_half) != (m_ == ModelMutant::rope_wrong_pairing) ? 0 : 1;
    const int lost_layer = model_mutant_layer(ModelMutant::residual_lost, c.layers);

    model_kernels::embed_gather(T, d_tok.get(), R, dw_.embed.get(), H, h.get(), st);
    rec(c.layers, Stage::embed, h);
    for (int l = 0; l < c.layers; ++l) {
        const model_device::LayerOnDevice& L = dw_.layers[static_cast<size_t>(l)];
        model_kernels::rmsnorm(T, h.get(), L.attn_norm.get(), R, H, static_cast<float>(c.rms_eps), xn.get(), st);
        rec(l, Stage::attn_norm, xn);
        gemm(L.wqkv, c.qkv_dim(), H, xn.get(), R, acc.get());
        const bool bias = c.qkv_bias && m_ != ModelMutant::qkv_bias_dropped;
        model_kernels::split_qkv(T, acc.get(), bias ? L.bqkv.get() : nullptr, R, QD, c.n_kv_heads, hd,
                                 m_ == ModelMutant::fused_k_wrong_layout, q.get(), k.get(), v.get(), st);
        rec(l, Stage::q, q);
        rec(l, Stage::k, k);
        rec(l, Stage::v, v);
        model_kernels::rope(T, q.get(), d_cos.get(), d_sin.get(), R, c.n_q_heads, hd, pairing, qr.get(), st);
        model_kernels::rope(T, k.get(), d_cos.get(), d_sin.get(), R, c.n_kv_heads, hd, pairing, kr.get(), st);
        rec(l, Stage::q_rope, qr);
        rec(l, Stage::k_rope, kr);

        // Append to the device caches, then hand the host problem to the target.
        const std::vector<float> qr_h = from_bytes(T, qr.download());
        int row = 0;
        for (size_t b = 0; b < batch.size(); ++b) {
            Slot& s = cache_[static_cast<size_t>(batch[b].seq)];
            const int n = static_cast<int>(batch[b].tokens.size());
            const int first = (m_ == ModelMutant::kv_cache_wrong_position && s.len > 0) ? s.len - 1 : s.len;
            const size_t rb = static_cast<size_t>(KD) * es;
            CUDA_CHECK(cudaMemcpy(s.k[static_cast<size_t>(l)].get() + static_cast<size_t>(first) * rb,
                                  kr.get() + row * rb, static_cast<size_t>(n) * rb, cudaMemcpyDeviceToDevice));
            CUDA_CHECK(cudaMemcpy(s.v[static_cast<size_t>(l)].get() + static_cast<size_t>(first) * rb,
                                  v.get() + row * rb, static_cast<size_t>(n) * rb, cudaMemcpyDeviceToDevice));
            if (first + n < s.len + n) {
                // The mutant left the last slot unwritten: make it the zeros
                // the CPU engine has there, not poison (a NaN would be caught
                // anyway; zeros keep the two backends' mutants identical).
                CUDA_CHECK(
                    cudaMemset(s.k[static_cast<size_t>(l)].get() + static_cast<size_t>(s.len + n - 1) * rb, 0, rb));
                CUDA_CHECK(
                    cudaMemset(s.v[static_cast<size_t>(l)].get() + static_cast<size_t>(s.len + n - 1) * rb, 0, rb));
            }
            const size_t total = static_cast<size_t>(s.len + n) * KD;
            std::vector<unsigned char> kb(total * es), vb(total * es);
            CUDA_CHECK(cudaMemcpy(kb.data(), s.k[static_cast<size_t>(l)].get(), kb.size(), cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(vb.data(), s.v[static_cast<size_t>(l)].get(), vb.size(), cudaMemcpyDeviceToHost));
            const std::vector<float> kf = from_bytes(T, kb), vf = from_bytes(T, vb);
            std::copy(kf.begin(), kf.end(), pb.k.begin() + pb.kv_start[b] * KD);
            std::copy(vf.begin(), vf.end(), pb.v.begin() + pb.kv_start[b] * KD);
            std::copy_n(&qr_h[static_cast<size_t>(row) * QD], static_cast<size_t>(n) * QD,
                        &pb.q[static_cast<size_t>(pb.q_start[b]) * QD]);
            row += n;
        }
        Observation ob = target->run(pb);
        if (ob.o.size() != r * QD)
            throw ModelError(fmt::format("cuda model: attention {} returned {} values, expected {}", attn_name,
                                         ob.o.size(), r * QD));
        ao.upload(to_bytes(T, ob.o.data(), ob.o.size()));
        if (out.trace) {
            out.trace->attn[static_cast<size_t>(l)] = pb;
            for (const SeqChunk& ch : batch) out.trace->attn_seq_ids[static_cast<size_t>(l)].push_back(ch.seq);
            out.trace->attn_target[static_cast<size_t>(l)] = target->full_name();
            out.trace->attn_profile[static_cast<size_t>(l)] = target->profile(shape_of(pb));
            out.trace->at(l, Stage::attn_out) = ob.o;
        }
        gemm(L.wo, H, QD, ao.get(), R, acc.get());
        model_kernels::store(T, acc.get(), static_cast<long long>(r) * H, o.get(), st);
        rec(l, Stage::o_proj, o);
        if (m_ == ModelMutant::residual_lost && l == lost_layer)
            CUDA_CHECK(cudaMemcpy(h.get(), o.get(), r * H * es, cudaMemcpyDeviceToDevice));
        else
            model_kernels::residual_add(T, h.get(), o.get(), static_cast<long long>(r) * H, st);
        rec(l, Stage::resid_attn, h);
        model_kernels::rmsnorm(T, h.get(), L.ffn_norm.get(), R, H, static_cast<float>(c.rms_eps), xn.get(), st);
        rec(l, Stage::ffn_norm, xn);
        gemm(L.w_gate, F, H, xn.get(), R, acc.get());
        model_kernels::store(T, acc.get(), static_cast<long long>(r) * F, g.get(), st);
        gemm(L.w_up, F, H, xn.get(), R, acc.get());
        model_kernels::store(T, acc.get(), static_cast<long long>(r) * F, u.get(), st);
        rec(l, Stage::gate, g);
        rec(l, Stage::up, u);
        model_kernels::silu_mul(T, g.get(), u.get(), static_cast<long long>(r) * F, a.get(), st);
        rec(l, Stage::act, a);
        gemm(L.w_down, H, F, a.get(), R, acc.get());
        model_kernels::store(T, acc.get(), static_cast<long long>(r) * H, dn.get(), st);
        rec(l, Stage::down, dn);
        model_kernels::residual_add(T, h.get(), dn.get(), static_cast<long long>(r) * H, st);
        rec(l, Stage::resid_ffn, h);
    }
    for (const SeqChunk& ch : batch) cache_[static_cast<size_t>(ch.seq)].len += static_cast<int>(ch.tokens.size());
    model_kernels::rmsnorm(T, h.get(), dw_.final_norm.get(), R, H, static_cast<float>(c.rms_eps), xn.get(), st);
    rec(c.layers, Stage::final_norm, xn);
    gemm(dw_.head(), c.vocab, H, xn.get(), R, logits.get());
    CUDA_CHECK(cudaDeviceSynchronize());
    out.logits = logits.download();
    if (out.trace) out.trace->at(c.layers, Stage::logits) = out.logits;

    for (const Bytes* b : {&h, &xn, &q, &k, &v, &qr, &kr, &ao, &o, &g, &u, &a, &dn}) b->check_guards();
    acc.check_guards();
    logits.check_guards();
    d_cos.check_guards();
    d_sin.check_guards();
    d_tok.check_guards();
    for (const SeqChunk& ch : batch)
        for (int l = 0; l < c.layers; ++l) {
            cache_[static_cast<size_t>(ch.seq)].k[static_cast<size_t>(l)].check_guards();
            cache_[static_cast<size_t>(ch.seq)].v[static_cast<size_t>(l)].check_guards();
        }
    return out;
}

} // namespace

std::unique_ptr<ModelEngine> make_cuda_model(const ModelWeights& w, int slots, ModelMutant m) {
    return std::make_unique<CudaModel>(w, slots, m);
}

} // namespace attncheck
