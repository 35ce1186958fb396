// The CPU decoder (see model_cpu.hpp for the numerics).
#include "model/model_cpu.hpp"
#include "kernels/registry.hpp"

#include <cmath>

#include <fmt/format.h>

#include "engine/targets/target.hpp"
#include "model/rope.hpp"

namespace attncheck {

namespace {

// y[r][j] = fp32 sum_i W[j][i] x[r][i], sequential in i.
void gemm(const std::vector<float>& W, int out, int in, const float* x, int rows, float* y) {
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<size_t>(r) * in;
        for (int j = 0; j < out; ++j) {
            const float* w = &W[static_cast<size_t>(j) * in];
            float acc = 0.0f;
            for (int i = 0; i < in; ++i) acc += w[i] * xr[i];
            y[static_cast<size_t>(r) * out + j] = acc;
        }
    }
}

void rmsnorm(DType t, const std::vector<float>& g, int n, float eps, const float* x, int rows, float* y) {
    for (int r = 0; r < rows; ++r) {
        const float* xr = x + static_cast<size_t>(r) * n;
        float ss = 0.0f;
        for (int i = 0; i < n; ++i) ss += xr[i] * xr[i];
        const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
        for (int i = 0; i < n; ++i)
            y[static_cast<size_t>(r) * n + i] = round_to(t, g[static_cast<size_t>(i)] * (xr[i] * inv));
    }
}

class CpuModel final : public ModelEngine {
public:
    CpuModel(const ModelWeights& w, int slots, ModelMutant m) : w_(w), m_(m) {
        validate(w_);
        if (slots < 1 || slots > 4096)
            throw ModelError(fmt::format("cpu model: {} sequence slots outside [1, 4096]", slots));
        cache_.assign(static_cast<size_t>(slots), Slot{});
        for (auto& s : cache_) {
            s.k.assign(static_cast<size_t>(w_.config.layers), {});
            s.v.assign(static_cast<size_t>(w_.config.layers), {});
        }
    }
    const ModelConfig& config() const override { return w_.config; }
    std::string name() const override {
        return m_ == ModelMutant::none ? "cpu/model" : std::string("cpu/model+") + model_mutant_name(m_);
    }
    int slots() const override { return static_cast<int>(cache_.size()); }
    int cache_len(int seq) const override { return cache_.at(static_cast<size_t>(seq)).len; }
    void reset(int seq) override {
        Slot& s = cache_.at(static_cast<size_t>(seq));
        s.len = 0;
        for (auto& k : s.k) k.clear();
        for (auto& v : s.v) v.clear();
    }
    StepOutput forward(const std::vector<SeqChunk>& batch, const ForwardOptions& opt) override;

private:
    struct Slot {
        int len = 0;
        std::vector<std::vector<float>> k, v; // per layer, [len][kv_dim]
    };
    ModelWeights w_;
    ModelMutant m_;
    std::vector<Slot> cache_;
};

StepOutput CpuModel::forward(const std::vector<SeqChunk>& batch, const ForwardOptions& opt) {
    validate_batch(*this, batch);
    const ModelConfig& c = w_.config;
    const DType T = c.dtype;
    const std::string attn_name = resolve_attention(c, batch, opt.attention);
    auto target = make_target(attn_name, Backend::cpu);
    if (!target) throw ModelError(fmt::format("cpu model: unknown attention family \"{}\"", attn_name));

    StepOutput out;
    out.attention = attn_name;
    for (const SeqChunk& ch : batch)
        for (size_t i = 0; i < ch.tokens.size(); ++i)
            out.rows.push_back({ch.seq, cache_len(ch.seq) + static_cast<int>(i)});
    const int R = static_cast<int>(out.rows.size());
    const int H = c.hidden, QD = c.q_dim(), KD = c.kv_dim(), F = c.ffn, hd = c.head_dim;
    if (opt.trace) out.trace.emplace().init(c, out.rows);
    auto rec = [&](int layer, Stage s, const std::vector<float>& v) {
        if (out.trace) out.trace->at(layer, s) = v;
    };

    // Build the problem first so an unsupported case is refused before any
    // cache is touched.
    AttentionProblem pb = attention_problem_for(*this, *target, T, batch, opt.num_splits);

    std::vector<float> h(static_cast<size_t>(R) * H);
    {
        int r = 0;
        for (const SeqChunk& ch : batch)
            for (int t : ch.tokens) {
                std::copy_n(&w_.embed[static_cast<size_t>(t) * H], H, &h[static_cast<size_t>(r) * H]);
                ++r;
            }
    }
    rec(c.layers, Stage::embed, h);

    // cos/sin per row, fp32 from fp64.
    const int half = hd / 2;
    std::vector<float> cosv, sinv;
    rope_tables(rope_config(c, m_), out.rows, cosv, sinv);
    const RopePairing pairing =
        m_ == ModelMutant::rope_wrong_pairing
            ? (c.rope_pairing == RopePairing::rotate_half ? RopePairing::interleaved : RopePairing::rotate_half)
            : c.rope_pairing;
    auto rope = [&](const std::vector<float>& x, int heads, std::vector<float>& y) {
        y.assign(x.size(), 0.0f);
        for (int r = 0; r < R; ++r)
            for (int hh = 0; hh < heads; ++hh) {
                const size_t base = (static_cast<size_t>(r) * heads + hh) * hd;
                for (int i = 0; i < half; ++i) {
                    const auto [a, b] = rope_pair(pairing, hd, i);
                    const float cs = cosv[static_cast<size_t>(r) * half + i],
                                sn = sinv[static_cast<size_t>(r) * half + i];
                    const float xa = x[base + a], xb = x[base + b];
                    y[base + a] = round_to(T, xa * cs - xb * sn);
                    y[base + b] = round_to(T, xb * cs + xa * sn);
                }
            }
    };

    std::vector<float> xn(static_cast<size_t>(R) * H), qkv(static_cast<size_t>(R) * c.qkv_dim());
    std::vector<float> q(static_cast<size_t>(R) * QD), k(static_cast<size_t>(R) * KD), v(static_cast<size_t>(R) * KD);
    std::vector<float> qr, kr, o(static_cast<size_t>(R) * H), gate(static_cast<size_t>(R) * F), up(gate.size()),
        act(gate.size()), down(static_cast<size_t>(R) * H);
    const int lost_layer = model_mutant_layer(ModelMutant::residual_lost, c.layers);
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
        rmsnorm(T, L.attn_norm, H, static_cast<float>(c.rms_eps), h.data(), R, xn.data());
        rec(l, Stage::attn_norm, xn);
        gemm(L.wqkv, c.qkv_dim(), H, xn.data(), R, qkv.data());
        const bool bias = c.qkv_bias && m_ != ModelMutant::qkv_bias_dropped;
        for (int r = 0; r < R; ++r) {
            float* row = &qkv[static_cast<size_t>(r) * c.qkv_dim()];
            for (int j = 0; j < c.qkv_dim(); ++j)
                row[j] = round_to(T, bias ? row[j] + L.bqkv[static_cast<size_t>(j)] : row[j]);
            std::copy_n(row, QD, &q[static_cast<size_t>(r) * QD]);
            for (int kh = 0; kh < c.n_kv_heads; ++kh)
                for (int ch = 0; ch < hd; ++ch) {
                    // The fused buffer holds K as [n_kv][head_dim]; the mutant
                    // reads it as [head_dim][n_kv].
                    const int src = m_ == ModelMutant::fused_k_wrong_layout ? ch * c.n_kv_heads + kh : kh * hd + ch;
                    k[static_cast<size_t>(r) * KD + kh * hd + ch] = row[QD + src];
                }
            std::copy_n(row + QD + KD, KD, &v[static_cast<size_t>(r) * KD]);
        }
        rec(l, Stage::q, q);
        rec(l, Stage::k, k);
        rec(l, Stage::v, v);
        rope(q, c.n_q_heads, qr);
        rope(k, c.n_kv_heads, kr);
        rec(l, Stage::q_rope, qr);
        rec(l, Stage::k_rope, kr);

        // Append to the caches, then lay out the attention problem.
        {
            int r = 0;
            for (size_t b = 0; b < batch.size(); ++b) {
                Slot& s = cache_[static_cast<size_t>(batch[b].seq)];
                const int n = static_cast<int>(batch[b].tokens.size());
                std::vector<float>& K = s.k[static_cast<size_t>(l)];
                std::vector<float>& V = s.v[static_cast<size_t>(l)];
                K.resize(static_cast<size_t>(s.len + n) * KD, 0.0f);
                V.resize(static_cast<size_t>(s.len + n) * KD, 0.0f);
                const int first = (m_ == ModelMutant::kv_cache_wrong_position && s.len > 0) ? s.len - 1 : s.len;
                for (int i = 0; i < n; ++i) {
                    std::copy_n(&kr[static_cast<size_t>(r + i) * KD], KD, &K[static_cast<size_t>(first + i) * KD]);
                    std::copy_n(&v[static_cast<size_t>(r + i) * KD], KD, &V[static_cast<size_t>(first + i) * KD]);
                }
                std::copy_n(&qr[static_cast<size_t>(r) * QD], static_cast<size_t>(n) * QD,
                            &pb.q[static_cast<size_t>(pb.q_start[b]) * QD]);
                std::copy(K.begin(), K.end(), pb.k.begin() + pb.kv_start[b] * KD);
                std::copy(V.begin(), V.end(), pb.v.begin() + pb.kv_start[b] * KD);
                r += n;
            }
        }
        Observation ob = target->run(pb);
        if (ob.o.size() != static_cast<size_t>(R) * QD)
            throw ModelError(fmt::format("cpu model: attention {} returned {} values, expected {}", attn_name,
                                         ob.o.size(), static_cast<size_t>(R) * QD));
        if (out.trace) {
            out.trace->attn[static_cast<size_t>(l)] = pb;
            for (const SeqChunk& ch : batch) out.trace->attn_seq_ids[static_cast<size_t>(l)].push_back(ch.seq);
            out.trace->attn_target[static_cast<size_t>(l)] = target->full_name();
            out.trace->attn_profile[static_cast<size_t>(l)] = target->profile(shape_of(pb));
        }
        rec(l, Stage::attn_out, ob.o);
        gemm(L.wo, H, QD, ob.o.data(), R, o.data());
        for (auto& x : o) x = round_to(T, x);
        rec(l, Stage::o_proj, o);
        const bool lose = m_ == ModelMutant::residual_lost && l == lost_layer;
        for (size_t i = 0; i < h.size(); ++i) h[i] = lose ? o[i] : round_to(T, h[i] + o[i]);
        rec(l, Stage::resid_attn, h);

        rmsnorm(T, L.ffn_norm, H, static_cast<float>(c.rms_eps), h.data(), R, xn.data());
        rec(l, Stage::ffn_norm, xn);
        gemm(L.w_gate, F, H, xn.data(), R, gate.data());
        gemm(L.w_up, F, H, xn.data(), R, up.data());
        for (auto& x : gate) x = round_to(T, x);
        for (auto& x : up) x = round_to(T, x);
        rec(l, Stage::gate, gate);
        rec(l, Stage::up, up);
        for (size_t i = 0; i < act.size(); ++i) {
            const float g = gate[i];
            act[i] = round_to(T, (g / (1.0f + std::exp(-g))) * up[i]);
        }
        rec(l, Stage::act, act);
        gemm(L.w_down, H, F, act.data(), R, down.data());
        for (auto& x : down) x = round_to(T, x);
        rec(l, Stage::down, down);
        for (size_t i = 0; i < h.size(); ++i) h[i] = round_to(T, h[i] + down[i]);
        rec(l, Stage::resid_ffn, h);
    }
    for (const SeqChunk& ch : batch) cache_[static_cast<size_t>(ch.seq)].len += static_cast<int>(ch.tokens.size());

    rmsnorm(T, w_.final_norm, H, static_cast<float>(c.rms_eps), h.data(), R, xn.data());
    rec(c.layers, Stage::final_norm, xn);
    out.logits.assign(static_cast<size_t>(R) * c.vocab, 0.0f);
    gemm(w_.lm_head_matrix(), c.vocab, H, xn.data(), R, out.logits.data());
    rec(c.layers, Stage::logits, out.logits);
    return out;
}

} // namespace

std::unique_ptr<ModelEngine> make_cpu_model(const ModelWeights& w, int slots, ModelMutant m) {
    return std::make_unique<CpuModel>(w, slots, m);
}

} // namespace attncheck
