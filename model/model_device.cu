// See model_device.cuh.
#include "model/model_device.cuh"

#include <cstring>

#include <fmt/format.h>

#include "engine/cuda/check.cuh"

namespace attncheck::model_device {

namespace {
cudaDataType_t cuda_type(DType t) { return t == DType::f32 ? CUDA_R_32F : t == DType::f16 ? CUDA_R_16F : CUDA_R_16BF; }
} // namespace

std::vector<unsigned char> to_bytes(DType t, const float* x, size_t n) {
    std::vector<unsigned char> b(n * esize(t));
    for (size_t i = 0; i < n; ++i) {
        if (t == DType::f32)
            std::memcpy(&b[i * 4], &x[i], 4);
        else {
            const std::uint16_t h = t == DType::f16 ? float_to_f16_bits(x[i]) : float_to_bf16_bits(x[i]);
            std::memcpy(&b[i * 2], &h, 2);
        }
    }
    return b;
}

std::vector<float> from_bytes(DType t, const std::vector<unsigned char>& b) {
    const size_t n = b.size() / esize(t);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        if (t == DType::f32)
            std::memcpy(&x[i], &b[i * 4], 4);
        else {
            std::uint16_t h;
            std::memcpy(&h, &b[i * 2], 2);
            x[i] = t == DType::f16 ? f16_bits_to_float(h) : bf16_bits_to_float(h);
        }
    }
    return x;
}

Bytes upload(DType t, const std::vector<float>& x, const std::string& name) {
    Bytes b(x.size() * esize(t), name);
    b.upload(to_bytes(t, x.data(), x.size()));
    return b;
}

WeightsOnDevice::WeightsOnDevice(const ModelWeights& w) : tied(w.config.tied_embeddings) {
    const ModelConfig& c = w.config;
    const DType T = c.dtype;
    embed = upload(T, w.embed, "embed");
    if (!c.tied_embeddings) lm_head = upload(T, w.lm_head, "lm_head");
    final_norm = upload(T, w.final_norm, "final_norm");
    for (int l = 0; l < c.layers; ++l) {
        const LayerWeights& L = w.layers[static_cast<size_t>(l)];
        LayerOnDevice d;
        const std::string p = fmt::format("layer{}.", l);
        d.attn_norm = upload(T, L.attn_norm, p + "attn_norm");
        d.ffn_norm = upload(T, L.ffn_norm, p + "ffn_norm");
        d.wqkv = upload(T, L.wqkv, p + "wqkv");
        if (c.qkv_bias) d.bqkv = upload(T, L.bqkv, p + "bqkv");
        d.wo = upload(T, L.wo, p + "wo");
        d.w_gate = upload(T, L.w_gate, p + "w_gate");
        d.w_up = upload(T, L.w_up, p + "w_up");
        d.w_down = upload(T, L.w_down, p + "w_down");
        layers.push_back(std::move(d));
    }
}

std::vector<GuardRegion> WeightsOnDevice::guards() const {
    std::vector<GuardRegion> g{embed.guards(), final_norm.guards()};
    if (!tied) g.push_back(lm_head.guards());
    for (const LayerOnDevice& d : layers)
        for (const Bytes* b : {&d.attn_norm, &d.ffn_norm, &d.wqkv, &d.bqkv, &d.wo, &d.w_gate, &d.w_up, &d.w_down})
            if (b->size()) g.push_back(b->guards());
    return g;
}

void gemm(cublasHandle_t h, DType t, const void* W, int out, int in, const void* X, int rows, float* Y) {
    const float one = 1.0f, zero = 0.0f;
    const cudaDataType_t ct_in = cuda_type(t);
    const cublasComputeType_t ct = t == DType::f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, W, ct_in, in, X, ct_in, in, &zero, Y,
                              CUDA_R_32F, out, ct, CUBLAS_GEMM_DEFAULT));
}

} // namespace attncheck::model_device
