// materialize() on the GPU. The host recipe (engine/case/problem.cpp) draws
// every value of a tensor of a sequence from one xoshiro stream forked by
// (sequence, tensor) and consumed in a fixed order (token, head, channel), so
// the natural parallelism is one GPU thread per stream: thread (b, T) forks
// the same stream, replays the host's draws in the host's order and writes
// tensor T of sequence b, rounded to the dtype as it goes. The per-head sink
// direction and Q/K bias vectors, and the per-channel outlier factors, are
// shared by all sequences and cheap, so the host computes them
// (recipe_tables) and uploads them. Constant tensors copy row 0 of each
// (sequence, head) within the writing thread; specials (and explicit values)
// are rounded on the host, where NaN bits are well defined, and written
// afterwards.
//
// Limits: a stream is inherently sequential, so a batch of b sequences runs
// on only 3b threads, and one GPU thread steps xoshiro (64-bit integer code
// on 32-bit ALUs, one dependent step after another) many times slower than a
// host core (estimated tens of ns per draw against 1-2 ns; not yet measured).
// For the campaign's cases (batch <= 3, up to ~5M draws in one stream) expect
// it to be correct but slower than materialize() plus an upload: the point is
// data that stays on the device, not speed. A faster version would start
// several threads per stream at chunk boundaries by jumping xoshiro ahead
// (its transition is linear over GF(2)); normal and uniform consume a fixed
// 12 and 1 draws per value, sparse_int a variable number, which is why this
// version does not.
//
// Bit identity with the host: the shared code (Rng, round_to, and draw()
// and the tables of recipe.hpp) is the host's own, made ATTNCHECK_HD; the
// arithmetic here that combines draws with the recipe's scales mirrors
// problem.cpp expression by expression, written with __dmul_rn/__dadd_rn
// because nvcc would otherwise contract a*b + c into an FMA (one rounding
// instead of two) while the host (-ffp-contract=off, and x86-64 without FMA
// anyway) rounds the product and the sum separately.
#include "engine/case/materialize_device.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/case/dtype.hpp"
#include "engine/case/recipe.hpp"
#include "engine/case/rng.hpp"
#include "engine/cuda/check.cuh"

namespace attncheck {

namespace {

// Explicit rather than the legacy stream 0, so the work is ordered on the
// calling thread's stream even if this file is built without
// --default-stream per-thread.
const cudaStream_t kStream = cudaStreamPerThread;

constexpr unsigned char kPoison = 0xff; // all-ones: a NaN, as kPoisonByte in device_buffer.cuh
constexpr int kThreadsPerBlock = 64;

// Everything a generating thread reads, by value.
struct GenParams {
    std::uint64_t seed;
    int batch, n_q_heads, n_kv_heads, head_dim, group;
    Dist dist;
    DType dtype;
    double q_scale, k_scale, v_scale, q_bias, k_bias, sink_factor;
    int sink_tokens;
    bool constant_q, constant_k, constant_v;
    const long long *q_start, *kv_start; // first token of each sequence
    const int *q_lens, *kv_lens;
    const double* sink_dir; // [n_kv_heads][head_dim], +-1
    const double* qb;       // [n_q_heads][head_dim]
    const double* kb;       // [n_kv_heads][head_dim]
    const double* out_mult; // [head_dim]: outlier_factor on outlier channels, else 1
    float *q, *k, *v;
};

// One special value, rounded on the host; index into its tensor.
struct DeviceSpecial {
    long long index;
    int tensor; // 0 q, 1 k, 2 v
    std::uint32_t bits;
};

// Tokens [0, len) of one tensor of one sequence (heads * d values each, in
// the host's token, head, channel order), value(t, h, ch) being the double
// that the host converts to float. A constant tensor repeats token 0, which
// this same thread wrote and rounded (rounding commutes with the copy); its
// stream is then not advanced, as it serves this (sequence, tensor) only and
// the draws the host makes for the overwritten tokens affect nothing else.
template <class Value>
__device__ void write_tokens(float* seq, int len, int heads, int d, bool constant, DType dtype, Value value) {
    const long long token_elems = static_cast<long long>(heads) * d;
    for (int t = 0; t < len; ++t) {
        float* const tok = seq + t * token_elems;
        if (constant && t > 0) {
            for (long long i = 0; i < token_elems; ++i) tok[i] = seq[i];
            continue;
        }
        for (int h = 0; h < heads; ++h)
            for (int ch = 0; ch < d; ++ch) tok[h * d + ch] = round_to(dtype, __double2float_rn(value(t, h, ch)));
    }
}

__device__ void generate_q(const GenParams& p, int b, Rng rng) {
    const int d = p.head_dim;
    float* const seq = p.q + p.q_start[b] * p.n_q_heads * d;
    write_tokens(seq, p.q_lens[b], p.n_q_heads, d, p.constant_q, p.dtype, [&](int, int h, int ch) {
        // x = q_scale * draw + q_bias * qb;  x += q_scale * sink_dir;  x * out_mult
        double x = __dadd_rn(__dmul_rn(p.q_scale, draw(rng, p.dist)), __dmul_rn(p.q_bias, p.qb[h * d + ch]));
        if (p.sink_tokens > 0) x = __dadd_rn(x, __dmul_rn(p.q_scale, p.sink_dir[h / p.group * d + ch]));
        return __dmul_rn(x, p.out_mult[ch]);
    });
}

__device__ void generate_k(const GenParams& p, int b, Rng rng) {
    const int d = p.head_dim;
    float* const seq = p.k + p.kv_start[b] * p.n_kv_heads * d;
    const double sink_scale = __dmul_rn(p.sink_factor, p.k_scale); // the host's left-to-right product
    write_tokens(seq, p.kv_lens[b], p.n_kv_heads, d, p.constant_k, p.dtype, [&](int t, int h, int ch) {
        // Drawn even for sink tokens, whose value is then replaced: the host draws too.
        double x = __dadd_rn(__dmul_rn(p.k_scale, draw(rng, p.dist)), __dmul_rn(p.k_bias, p.kb[h * d + ch]));
        if (t < p.sink_tokens) x = __dmul_rn(sink_scale, p.sink_dir[h * d + ch]);
        return __dmul_rn(x, p.out_mult[ch]);
    });
}

__device__ void generate_v(const GenParams& p, int b, Rng rng) {
    const int d = p.head_dim;
    float* const seq = p.v + p.kv_start[b] * p.n_kv_heads * d;
    write_tokens(seq, p.kv_lens[b], p.n_kv_heads, d, p.constant_v, p.dtype,
                 [&](int, int, int) { return __dmul_rn(p.v_scale, draw(rng, p.dist)); });
}

// Grid: x over sequences, y over the tensor (0 Q, 1 K, 2 V), so a warp runs
// one tensor's code path.
__global__ void generate_kernel(GenParams p) {
    const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (b >= p.batch) return;
    const Rng root(p.seed);
    const std::uint64_t seq_tag = static_cast<std::uint64_t>(b) << 8;
    switch (blockIdx.y) {
        case 0:
            generate_q(p, b, root.fork(seq_tag | kTagQ));
            break;
        case 1:
            generate_k(p, b, root.fork(seq_tag | kTagK));
            break;
        default:
            generate_v(p, b, root.fork(seq_tag | kTagV));
            break;
    }
}

// One thread, in list order: a later special on the same element wins, as on
// the host. Cases carry a handful of specials.
__global__ void specials_kernel(const DeviceSpecial* s, int n, float* q, float* k, float* v) {
    for (int i = 0; i < n; ++i) {
        float* x = s[i].tensor == 0 ? q : s[i].tensor == 1 ? k : v;
        x[s[i].index] = bits_float(s[i].bits);
    }
}

// Device memory ordered on kStream, so that freeing it after enqueuing the
// kernels that read it is safe without waiting for them.
class StreamBytes {
public:
    explicit StreamBytes(std::size_t n) {
        if (n) CUDA_CHECK(cudaMallocAsync(&p_, n, kStream));
    }
    StreamBytes(const StreamBytes&) = delete;
    StreamBytes& operator=(const StreamBytes&) = delete;
    ~StreamBytes() {
        if (p_) cudaFreeAsync(p_, kStream); // destructor: cannot throw; errors surface on the next checked call
    }
    unsigned char* get() const { return static_cast<unsigned char*>(p_); }

private:
    void* p_ = nullptr;
};

// Small host tables packed into one buffer: one allocation and one copy per
// case instead of one per table.
class Packer {
public:
    template <class T>
    std::size_t add(const T* data, std::size_t n) {
        const std::size_t at = (bytes_.size() + 15) / 16 * 16;
        bytes_.resize(at + n * sizeof(T));
        if (n) std::memcpy(bytes_.data() + at, data, n * sizeof(T));
        return at;
    }
    template <class T>
    std::size_t add(const std::vector<T>& v) {
        return add(v.data(), v.size());
    }
    // Enqueues the upload. cudaMemcpyAsync from pageable memory returns once
    // the source has been staged, so bytes_ may die before the copy lands.
    void upload(const StreamBytes& dst) const {
        if (!bytes_.empty())
            CUDA_CHECK(cudaMemcpyAsync(dst.get(), bytes_.data(), bytes_.size(), cudaMemcpyHostToDevice, kStream));
    }
    std::size_t size() const { return bytes_.size(); }

private:
    std::vector<unsigned char> bytes_;
};

void poison(float* x, std::size_t n) {
    if (n) CUDA_CHECK(cudaMemsetAsync(x, kPoison, n * sizeof(float), kStream));
}

void upload_rounded(float* dst, const std::vector<double>& src, DType t) {
    if (src.empty()) return;
    std::vector<float> h(src.size());
    for (size_t i = 0; i < src.size(); ++i) h[i] = round_to(t, src[i]);
    CUDA_CHECK(cudaMemcpyAsync(dst, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice, kStream));
}

// The launch that generates the recipe's values.
void enqueue_recipe(const Case& c, const AttentionProblem& shape, float* d_q, float* d_k, float* d_v) {
    const DataRecipe& r = c.data;
    const int d = c.head_dim;
    const RecipeTables tab = recipe_tables(c);
    Packer pk;
    const std::size_t o_q_start = pk.add(shape.q_start), o_kv_start = pk.add(shape.kv_start),
                      o_q_lens = pk.add(c.q_lens), o_kv_lens = pk.add(c.kv_lens), o_sink = pk.add(tab.sink_dir),
                      o_qb = pk.add(tab.qb), o_kb = pk.add(tab.kb), o_om = pk.add(tab.out_mult);
    StreamBytes tables(pk.size());
    pk.upload(tables);
    const unsigned char* base = tables.get();

    GenParams p{};
    p.seed = r.seed;
    p.batch = c.batch();
    p.n_q_heads = c.n_q_heads;
    p.n_kv_heads = c.n_kv_heads;
    p.head_dim = d;
    p.group = c.n_q_heads / c.n_kv_heads;
    p.dist = r.dist;
    p.dtype = c.dtype;
    p.q_scale = r.q_scale;
    p.k_scale = r.k_scale;
    p.v_scale = r.v_scale;
    p.q_bias = r.q_bias;
    p.k_bias = r.k_bias;
    p.sink_factor = r.sink_factor;
    p.sink_tokens = r.sink_tokens;
    p.constant_q = r.constant_q;
    p.constant_k = r.constant_k;
    p.constant_v = r.constant_v;
    p.q_start = reinterpret_cast<const long long*>(base + o_q_start);
    p.kv_start = reinterpret_cast<const long long*>(base + o_kv_start);
    p.q_lens = reinterpret_cast<const int*>(base + o_q_lens);
    p.kv_lens = reinterpret_cast<const int*>(base + o_kv_lens);
    p.sink_dir = reinterpret_cast<const double*>(base + o_sink);
    p.qb = reinterpret_cast<const double*>(base + o_qb);
    p.kb = reinterpret_cast<const double*>(base + o_kb);
    p.out_mult = reinterpret_cast<const double*>(base + o_om);
    p.q = d_q;
    p.k = d_k;
    p.v = d_v;
    const dim3 grid(static_cast<unsigned>((c.batch() + kThreadsPerBlock - 1) / kThreadsPerBlock), 3);
    generate_kernel<<<grid, kThreadsPerBlock, 0, kStream>>>(p);
    CUDA_CHECK_LAUNCH();
}

void enqueue_specials(const Case& c, const AttentionProblem& shape, float* d_q, float* d_k, float* d_v) {
    const std::vector<SpecialValue>& sv = c.data.specials;
    if (sv.empty()) return;
    std::vector<DeviceSpecial> h;
    h.reserve(sv.size());
    for (const SpecialValue& s : sv) {
        const bool is_q = s.tensor == TensorId::q;
        const long long base = is_q ? shape.q_index(s.seq, s.token, s.head) : shape.kv_index(s.seq, s.token, s.head);
        h.push_back({base + s.dim, is_q ? 0 : s.tensor == TensorId::k ? 1 : 2, float_bits(round_to(c.dtype, s.value))});
    }
    Packer pk;
    pk.add(h);
    StreamBytes table(pk.size());
    pk.upload(table);
    specials_kernel<<<1, 1, 0, kStream>>>(reinterpret_cast<const DeviceSpecial*>(table.get()),
                                          static_cast<int>(h.size()), d_q, d_k, d_v);
    CUDA_CHECK_LAUNCH();
}

// materialize_into_device without the validation.
void enqueue_all(const Case& c, const AttentionProblem& shape, float* d_q, float* d_k, float* d_v) {
    poison(d_q, shape.q_elems());
    poison(d_k, shape.kv_elems());
    poison(d_v, shape.kv_elems());
    if (c.values) {
        upload_rounded(d_q, c.values->q, c.dtype);
        upload_rounded(d_k, c.values->k, c.dtype);
        upload_rounded(d_v, c.values->v, c.dtype);
    } else {
        enqueue_recipe(c, shape, d_q, d_k, d_v);
    }
    enqueue_specials(c, shape, d_q, d_k, d_v);
}

void download(std::vector<float>& dst, const StreamBytes& src) {
    if (!dst.empty())
        CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.get(), dst.size() * sizeof(float), cudaMemcpyDeviceToHost, kStream));
}

} // namespace

void materialize_into_device(const Case& c, float* d_q, float* d_k, float* d_v) {
    validate(c);
    enqueue_all(c, problem_shape(c), d_q, d_k, d_v);
}

AttentionProblem materialize_on_device(const Case& c) {
    validate(c);
    AttentionProblem p = problem_shape(c);
    p.q.resize(p.q_elems());
    p.k.resize(p.kv_elems());
    p.v.resize(p.kv_elems());

    StreamBytes q(p.q.size() * sizeof(float)), k(p.k.size() * sizeof(float)), v(p.v.size() * sizeof(float));
    auto* fq = reinterpret_cast<float*>(q.get());
    auto* fk = reinterpret_cast<float*>(k.get());
    auto* fv = reinterpret_cast<float*>(v.get());
    enqueue_all(c, p, fq, fk, fv);
    download(p.q, q);
    download(p.k, k);
    download(p.v, v);
    // Kernel faults surface here, named by this call.
    CUDA_CHECK(cudaStreamSynchronize(kStream));
    return p;
}

} // namespace attncheck
