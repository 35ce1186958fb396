// flash_prefill: FlashAttention-2 style prefill on the GPU.
//
// Algorithm. One block (4 warps) owns kBlockM = 64 query rows of one
// (sequence, q head) and walks the key tiles [t_lo, t_hi) that cover the
// union of those rows' visible ranges (flash::block_tile_range; tiles of
// block_n(D) keys aligned to key 0, in increasing order), so tiles wholly
// outside every row's causal/window range are never loaded. Q (64 x D), one
// K tile and one V tile live in shared memory, filled by cp.async with zero
// fill for rows past q_len / kv_len (nothing past a sequence is ever read).
// Per tile: S = Q K^T, masked (keys past kv_len and keys key_visible hides;
// tiles inside every row's range skip the mask), scaled into log2 units
// (log2 e folded into the scale so the exponential is one exp2f); online
// softmax in registers (running max m and partial row sum l per row,
// acc and l rescaled by exp2(m_old - m_new)); P = exp2(s2 - m) rounded to T
// and O += P V. At the end O = acc / l is rounded to T and LSE =
// m ln 2 + log l (fp32). A row whose running max stayed -inf (nothing
// visible in any visited tile, or no tile at all) gives O = 0, LSE = -inf.
//
// Two compute paths, chosen at compile time by T:
//  - fp16/bf16: tensor cores, mma.sync.m16n8k16 with fp32 accumulation. Each
//    warp owns 16 rows; fragments come from shared memory via ldmatrix (Q and
//    K plain, V transposed; kUseLdmatrix = false switches to plain 32/16-bit
//    shared loads with the same fragment layout). The S accumulator fragment
//    is re-packed in registers as the A operand of P.V (the FA2 trick).
//  - fp32: CUDA cores (FFMA), no TF32: thread (ty, tx) of a 16 x 8 grid owns
//    rows ty + 16r (r < 4) and keys tx + 8k / O columns tx + 8c; P goes
//    through a per-warp slice of shared memory (fp32, never rounded).
//
// Pipeline (one buffer each for K and V, FA2's overlap):
//   wait; sync [B1]  -> K(n) visible; every warp is done with V(n-1)
//   issue V(n);  S = Q K(n)^T;  softmax
//   wait; sync [B2]  -> V(n) visible; every warp is done with K(n)
//   issue K(n+1);  O += P V(n)
// Mutant::missing_barrier drops B2: a warp that is through its own copies
// reads V(n) rows other warps' copies may not have landed yet (stale V(n-1)
// or, on the first tile, uninitialized shared memory) and starts K(n+1)
// copies over the K tile other warps may still be reading.
//
// Limits: head_dim 64, 80, 96, 128, 256 (other dims are rejected by
// flash_prefill_unsupported). Shared memory per block (dynamic):
//   fp16/bf16: (64 + 2 BN)(D + 8) * 2 B  = 27.0 / 33.0 / 39.0 / 51.0 / 66.0 KB for D = 64 / 80 / 96 / 128 / 256
//   fp32:      (64 + 2 BN)(D + 4) * 4 B + 64 (BN + 8) * 4 B
//              = 69 / 81 / 93 / 117 / 140 KB
// (BN = 64, and 32 for D = 256). Limits above 48 KB are raised with
// cudaFuncSetAttribute. Known property of every tiled kernel of this kind:
// a NaN/inf in a V row that is masked for some row of the block but lies in
// a visited tile reaches that row as 0 * NaN.
//
// Mutants (template parameter, `if constexpr`; hooks of attention_common.hpp
// unless noted): scale_* via score_scale; finite_mask_sentinel via
// masked_score (masked scores in visited tiles, keys past kv_len included,
// become -1e4, so a row with nothing visible no longer has a -inf running
// max and averages V); mask_* via key_visible; top_left_causal via
// query_position; no_row_max via softmax_shift; normalizer_drops_key via
// counts_in_normalizer (first key of the row's range); gqa_map_mod and
// v_wrong_head via the head maps; partial_q_load rewrites the Q tile through
// q_loaded; online_no_rescale skips the O-accumulator rescale (l is still
// rescaled); fp16_accumulation rounds the O accumulator to fp16 once per key
// tile and the row sum at every add; missing_barrier drops B2 (CUDA only).
// Only Mutant::none skips the mask on interior tiles.
//
// Builds: Mutant::none for float, __half, __nv_bfloat16 x every supported D;
// mutants only for __half at D = 64.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "engine/cuda/check.cuh"
#include "engine/targets/mutant_dispatch.hpp"
#include "kernels/common/device_problem.cuh"
#include "kernels/flash_prefill/flash_prefill.hpp"

namespace attncheck::kernels {

namespace {

using flash::kBlockM;
using flash::kLn2;
using flash::kLog2e;
using flash::kThreads;
using flash::kWarps;

// Fragment loads through ldmatrix (true) or plain shared-memory loads (false);
// both fill the same m16n8k16 fragment layout. The plain path is the simpler
// one to read and a fallback for bisecting.
constexpr bool kUseLdmatrix = true;

static_assert(kBlockM == kWarps * 16, "mma path: each warp owns one 16-row m-tile");
static_assert(kThreads == 128, "fp32 path: a 16 x 8 thread grid");

template <class T>
constexpr bool kIsMma = !std::is_same_v<T, float>;

// Shared-memory row stride (elements) of the Q, K, V tiles: D plus 16 bytes,
// which keeps 16-byte alignment for cp.async and makes consecutive rows start
// 4 banks apart (ldmatrix phases and the fp32 float4 loads are conflict-free).
template <class T, int D>
constexpr int row_stride() {
    return D + 16 / static_cast<int>(sizeof(T));
}
// fp32 path: row stride of the P slice, BN + 8 floats (rows 8 banks apart).
template <int BN>
constexpr int p_stride() {
    return BN + 8;
}

template <class T, int D>
constexpr int smem_bytes() {
    constexpr int BN = flash::block_n(D);
    constexpr int S = row_stride<T, D>();
    int bytes = (kBlockM + 2 * BN) * S * static_cast<int>(sizeof(T));
    if (!kIsMma<T>) bytes += kBlockM * p_stride<BN>() * 4;
    return bytes;
}

template <class T>
struct FlashParams {
    const T* q;
    const T* k;
    const T* v;
    T* o;
    float* lse;
    const int* q_start;
    const int* kv_start;
    const int* q_lens;
    const int* kv_lens;
    AttnShape shape;
};

// ---------------------------------------------------------------- PTX helpers

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; src_bytes = 0 writes 16 zero bytes and reads
// nothing (the source address is then only a valid placeholder).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}

// D(16x8, f32) += A(16x16, row) * B(16x8, col), fp32 accumulation.
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest into T, packed low = first.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t pack_raw(uint16_t lo, uint16_t hi) {
    return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

template <class T>
__device__ __forceinline__ float to_f(T x) {
    if constexpr (std::is_same_v<T, __half>)
        return __half2float(x);
    else if constexpr (std::is_same_v<T, __nv_bfloat16>)
        return __bfloat162float(x);
    else
        return x;
}
template <class T>
__device__ __forceinline__ T from_f(float x) {
    if constexpr (std::is_same_v<T, __half>)
        return __float2half_rn(x);
    else if constexpr (std::is_same_v<T, __nv_bfloat16>)
        return __float2bfloat16_rn(x);
    else
        return x;
}

// ------------------------------------------------------- tile loads (cp.async)

// ROWS x D tile of T into shared memory (row stride S elements) from global
// rows g + r * gstride, r < rows_valid; rows past rows_valid are zero-filled
// and never read. Consecutive threads copy consecutive 16-byte chunks.
template <class T, int D, int ROWS, int S>
__device__ __forceinline__ void load_tile(T* s, const T* g, long long gstride, int rows_valid) {
    constexpr int kEpc = 16 / static_cast<int>(sizeof(T)); // elements per 16-byte chunk
    constexpr int kCpr = D / kEpc;                         // chunks per row
    static_assert(D % kEpc == 0, "a row must be a whole number of 16-byte chunks");
    for (int idx = threadIdx.x; idx < ROWS * kCpr; idx += kThreads) {
        const int r = idx / kCpr;
        const int c = (idx % kCpr) * kEpc;
        const bool valid = r < rows_valid;
        cp_async_16(s + r * S + c, valid ? g + r * gstride + c : g, valid ? 16 : 0);
    }
}

// ------------------------------------------------------------ online softmax

// One tile of the online softmax for the R rows a thread holds; s holds the
// raw scores of KPT keys per row (key j_base + key_of(kk)); RED lanes
// (consecutive, xor-reducible) share each row. On return s holds the
// unnormalized probabilities exp2(s2 - shift) in fp32, m/l are updated and
// resc is the factor the caller applies to its O accumulator rows.
template <Mutant M, int R, int KPT, int RED, class KeyOf>
__device__ __forceinline__ void softmax_tile(float (&s)[R][KPT], float (&m)[R], float (&l)[R], float (&resc)[R],
                                             const AttnShape& sh, const int (&pos)[R], const int (&first_vis)[R],
                                             int kv_len, int j_base, bool interior, float scale_log2, float masked_log2,
                                             KeyOf key_of) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) {
            const int j = j_base + key_of(kk);
            const bool vis = interior || (j < kv_len && key_visible<M>(sh, pos[r], j));
            // __fmul_rn: a product the compiler may not fuse into the later
            // `s - shift` (an FMA there skips this rounding, so the row's own
            // max key gave exp2(+tiny) = 1 + ulp > 1 in the probe).
            s[r][kk] = vis ? __fmul_rn(s[r][kk], scale_log2) : masked_log2;
        }
        float mx = s[r][0];
#pragma unroll
        for (int kk = 1; kk < KPT; ++kk) mx = fmaxf(mx, s[r][kk]);
#pragma unroll
        for (int off = 1; off < RED; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float m_new = fmaxf(m[r], mx);
        float shift;
        if (m_new == -INFINITY) { // nothing visible yet: acc and l are 0
            shift = 0.0f;
            resc[r] = 1.0f;
        } else {
            shift = softmax_shift<M>(m_new);
            resc[r] = exp2f(softmax_shift<M>(m[r]) - shift); // exp2(-inf) = 0 on the first visible tile
        }
        m[r] = m_new;
        l[r] *= resc[r];
#pragma unroll
        for (int kk = 0; kk < KPT; ++kk) {
            const float e = exp2f(s[r][kk] - shift);
            s[r][kk] = e;
            if (counts_in_normalizer<M>(j_base + key_of(kk), first_vis[r])) l[r] = accumulate<M>(l[r], e);
        }
    }
}

// ------------------------------------------------------------------- kernel

template <class T, int D, Mutant M>
__device__ __forceinline__ void flash_prefill_body(const FlashParams<T>& P, const DeviceProbeView& probe) {
    constexpr bool kMma = kIsMma<T>;
    constexpr int BN = flash::block_n(D);
    constexpr int S = row_stride<T, D>();
    constexpr int SP = p_stride<BN>();
    // mma path: per warp 16 rows; S tile = NT n-tiles of 8 keys; P.V has
    // PK k-steps of 16 keys and DN n-tiles of 8 output columns.
    constexpr int NT = BN / 8;
    constexpr int PK = BN / 16;
    constexpr int DN = D / 8;
    // fp32 path: 4 rows x (BN / 8) keys and 4 rows x (D / 8) columns per thread.
    constexpr int FK = BN / 8;
    constexpr int FC = D / 8;
    // Per-thread layout of the generic softmax: R rows x KPT keys, RED lanes per row.
    constexpr int R = kMma ? 2 : 4;
    constexpr int KPT = kMma ? 2 * NT : FK;
    constexpr int RED = kMma ? 4 : 8;
    static_assert(D % 16 == 0, "head_dim must be a multiple of the mma k-step (16)");
    static_assert(BN % 16 == 0 && NT % 2 == 0, "BLOCK_N: whole k-steps of 16 keys, n-tiles in pairs (ldmatrix.x4)");
    static_assert(DN % 2 == 0, "O n-tiles are loaded in pairs (ldmatrix.x4.trans)");
    static_assert(!kMma || (kBlockM + 2 * BN) * S * sizeof(T) <= 227 * 1024, "shared memory over the sm_90 limit");
    static_assert(kMma || smem_bytes<T, D>() <= 227 * 1024, "shared memory over the sm_90 limit");
    static_assert(kMma || (D % 4 == 0 && BN % 4 == 0), "fp32 path: float4 shared loads");

    extern __shared__ __align__(16) unsigned char flash_smem[];
    T* sQ = reinterpret_cast<T*>(flash_smem);
    T* sK = sQ + kBlockM * S;
    T* sV = sK + BN * S;
    float* sP = reinterpret_cast<float*>(sV + BN * S); // fp32 path only

    const AttnShape sh = P.shape;
    const int b = blockIdx.z, h = blockIdx.y;
    const int q_len = P.q_lens[b];
    const int i0 = (gridDim.x - 1 - blockIdx.x) * kBlockM; // longest causal work first
    if (i0 >= q_len) return;                               // whole block: before any barrier
    const int kv_len = P.kv_lens[b];
    const int i_end = min(q_len, i0 + kBlockM);
    const int kvh = kv_head_of<M>(sh, h);
    const int vh = v_head_of<M>(sh, kvh);
    const long long q_row = static_cast<long long>(sh.n_q_heads) * D;   // token stride of Q and O
    const long long kv_row = static_cast<long long>(sh.n_kv_heads) * D; // token stride of K and V
    const T* Qg = P.q + (static_cast<long long>(P.q_start[b]) + i0) * q_row + static_cast<long long>(h) * D;
    const T* Kg = P.k + static_cast<long long>(P.kv_start[b]) * kv_row + static_cast<long long>(kvh) * D;
    const T* Vg = P.v + static_cast<long long>(P.kv_start[b]) * kv_row + static_cast<long long>(vh) * D;

    int t_lo, t_hi;
    flash::block_tile_range<M>(sh, q_len, kv_len, i0, i_end, BN, t_lo, t_hi);
    // A tile is interior when every valid row of the block sees all of its
    // keys (first row's hi, last row's lo; both monotone): no mask needed.
    int lo_last, hi_first, unused;
    key_range<M>(sh, kv_len, query_position<M>(q_len, kv_len, i_end - 1), lo_last, unused);
    key_range<M>(sh, kv_len, query_position<M>(q_len, kv_len, i0), unused, hi_first);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane >> 2, t = lane & 3;         // mma: group id and thread in group
    const int ty = threadIdx.x / 8, tx = lane & 7; // fp32: row group and key/column lane
    // Block-local row of this thread's r-th row.
    auto row_of = [&](int r) { return kMma ? warp * 16 + g + 8 * r : ty + 16 * r; };
    // Key (within the tile) of this thread's kk-th score of a row.
    auto key_of = [&](int kk) { return kMma ? (kk >> 1) * 8 + 2 * t + (kk & 1) : tx + 8 * kk; };
    const bool warp_active = kMma ? i0 + warp * 16 < q_len : i0 + 4 * warp < q_len;
    const bool lead = kMma ? t == 0 : tx == 0; // writes per-row scalars

    int pos[R], first_vis[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        pos[r] = query_position<M>(q_len, kv_len, i0 + row_of(r));
        first_vis[r] = 0;
        if constexpr (M == Mutant::normalizer_drops_key) {
            int lo, hi;
            key_range<M>(sh, kv_len, pos[r], lo, hi);
            first_vis[r] = lo < hi ? lo : -1;
        }
    }
    const float scale_nat = score_scale<M>(sh.scale);
    const float scale_log2 = scale_nat * kLog2e;
    const float masked_nat = masked_score<M>();
    const float masked_log2 = masked_nat * kLog2e;

    // Probe: which of this thread's rows (if any) is the probed one.
    int probe_r = -1;
    if (probe.active && probe.seq == b && probe.head == h && probe.token >= i0 && probe.token < i_end) {
#pragma unroll
        for (int r = 0; r < R; ++r)
            if (row_of(r) == probe.token - i0) probe_r = r;
    }

    float m[R], l[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    // O accumulator: mma C fragments acc[dn][0..3] (rows g, g+8; columns
    // dn*8 + 2t, +1), or fp32 acc[r][c] (row ty + 16r, column tx + 8c).
    constexpr int ACC0 = kMma ? DN : R;
    constexpr int ACC1 = kMma ? 4 : FC;
    float acc[ACC0][ACC1];
#pragma unroll
    for (int i = 0; i < ACC0; ++i)
#pragma unroll
        for (int j = 0; j < ACC1; ++j) acc[i][j] = 0.0f;

    // Prologue: Q tile and the first K tile.
    load_tile<T, D, kBlockM, S>(sQ, Qg, q_row, q_len - i0);
    if (t_lo < t_hi)
        load_tile<T, D, BN, S>(sK, Kg + static_cast<long long>(t_lo) * BN * kv_row, kv_row, kv_len - t_lo * BN);
    cp_async_commit();
    if constexpr (M == Mutant::partial_q_load) {
        cp_async_wait_all();
        __syncthreads();
        for (int idx = threadIdx.x; idx < kBlockM * D; idx += kThreads) {
            const int r = idx / D, c = idx % D;
            sQ[r * S + c] = from_f<T>(q_loaded<M>(to_f<T>(sQ[r * S + c]), c));
        }
        // The first B1 below orders these stores before any read of Q.
    }

    for (int n = t_lo; n < t_hi; ++n) {
        const int j_base = n * BN;
        cp_async_wait_all();
        __syncthreads(); // B1: K(n) (and Q) visible; every warp is done reading V(n-1)
        if constexpr (M == Mutant::missing_barrier) {
            // A race shows only when warps drift apart, which a lightly loaded
            // GPU rarely does (without this the mutant changed 0 of 10 grid
            // cases on the H100, though racecheck flags it). Warp 0 issuing
            // its V(n) copies ~20 us late is the drift a busy SM produces.
            if (threadIdx.x / 32 == 0) __nanosleep(20000);
        }
        load_tile<T, D, BN, S>(sV, Vg + static_cast<long long>(j_base) * kv_row, kv_row, kv_len - j_base);
        cp_async_commit();

        bool interior = false;
        if constexpr (M == Mutant::none)
            interior = j_base + BN <= kv_len && lo_last <= j_base && j_base + BN <= hi_first;

        float sc[R][KPT];
        float resc[R];
        uint32_t pa[kMma ? PK : 1][4]; // mma: P as A fragments of P.V
        if (warp_active) {
            // ---- S = Q K(n)^T (raw scores, fp32)
            if constexpr (kMma) {
                float sf[NT][4];
#pragma unroll
                for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) sf[nt][e] = 0.0f;
#pragma unroll
                for (int ks = 0; ks < D / 16; ++ks) {
                    uint32_t a[4];
                    const int k0 = ks * 16;
                    if constexpr (kUseLdmatrix) {
                        // matrices: rows 0-7 | 8-15 at k0, rows 0-7 | 8-15 at k0 + 8
                        ldsm_x4(a, sQ + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + k0 + (lane >> 4) * 8);
                    } else {
                        const T* q0 = sQ + (warp * 16 + g) * S + k0 + 2 * t;
                        a[0] = *reinterpret_cast<const uint32_t*>(q0);
                        a[1] = *reinterpret_cast<const uint32_t*>(q0 + 8 * S);
                        a[2] = *reinterpret_cast<const uint32_t*>(q0 + 8);
                        a[3] = *reinterpret_cast<const uint32_t*>(q0 + 8 * S + 8);
                    }
#pragma unroll
                    for (int nt = 0; nt < NT; nt += 2) {
                        uint32_t bb[4]; // b0, b1 of n-tile nt, then of nt + 1
                        if constexpr (kUseLdmatrix) {
                            // matrices: keys nt*8 + 0-7 at k0 | k0 + 8, keys nt*8 + 8-15 at k0 | k0 + 8
                            ldsm_x4(bb, sK + (nt * 8 + ((lane >> 4) & 1) * 8 + (lane & 7)) * S + k0 +
                                            ((lane >> 3) & 1) * 8);
                        } else {
                            const T* k0p = sK + (nt * 8 + g) * S + k0 + 2 * t;
                            bb[0] = *reinterpret_cast<const uint32_t*>(k0p);
                            bb[1] = *reinterpret_cast<const uint32_t*>(k0p + 8);
                            bb[2] = *reinterpret_cast<const uint32_t*>(k0p + 8 * S);
                            bb[3] = *reinterpret_cast<const uint32_t*>(k0p + 8 * S + 8);
                        }
                        mma16816<T>(sf[nt], a, bb[0], bb[1]);
                        mma16816<T>(sf[nt + 1], a, bb[2], bb[3]);
                    }
                }
                // Fragment (nt, e): row g + 8 (e >> 1), key nt*8 + 2t + (e & 1).
#pragma unroll
                for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) sc[e >> 1][nt * 2 + (e & 1)] = sf[nt][e];
            } else {
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int kk = 0; kk < KPT; ++kk) sc[r][kk] = 0.0f;
#pragma unroll 2
                for (int c = 0; c < D; c += 4) {
                    float4 qv[R];
#pragma unroll
                    for (int r = 0; r < R; ++r)
                        qv[r] = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(sQ) +
                                                                 (ty + 16 * r) * S + c);
#pragma unroll
                    for (int kk = 0; kk < KPT; ++kk) {
                        const float4 kv = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(sK) +
                                                                           (tx + 8 * kk) * S + c);
#pragma unroll
                        for (int r = 0; r < R; ++r) {
                            float x = sc[r][kk];
                            x = fmaf(qv[r].x, kv.x, x);
                            x = fmaf(qv[r].y, kv.y, x);
                            x = fmaf(qv[r].z, kv.z, x);
                            x = fmaf(qv[r].w, kv.w, x);
                            sc[r][kk] = x;
                        }
                    }
                }
            }

            // ---- probe: raw / scaled / masked scores of the probed row
            if (probe.active && probe_r >= 0) {
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    if (r != probe_r) continue;
#pragma unroll
                    for (int kk = 0; kk < KPT; ++kk) {
                        const int j = j_base + key_of(kk);
                        if (j >= kv_len) continue;
                        const bool vis = interior || key_visible<M>(sh, pos[r], j);
                        probe.raw[j] = sc[r][kk];
                        probe.scaled[j] = sc[r][kk] * scale_nat;
                        probe.masked[j] = vis ? sc[r][kk] * scale_nat : masked_nat;
                    }
                }
            }

            // ---- mask, online softmax, rescale O
            softmax_tile<M, R, KPT, RED>(sc, m, l, resc, sh, pos, first_vis, kv_len, j_base, interior, scale_log2,
                                         masked_log2, key_of);
            if constexpr (M != Mutant::online_no_rescale) {
#pragma unroll
                for (int i = 0; i < ACC0; ++i)
#pragma unroll
                    for (int j = 0; j < ACC1; ++j) {
                        if constexpr (kMma)
                            acc[i][j] *= resc[j >> 1]; // C fragment: rows g (e < 2), g + 8
                        else
                            acc[i][j] *= resc[i];
                    }
            }

            // ---- P: packed into A fragments (rounded to T), or to shared memory (fp32)
            if constexpr (kMma) {
#pragma unroll
                for (int kk = 0; kk < PK; ++kk) {
                    // keys 16kk + 2t (+1) and 16kk + 8 + 2t (+1): sc[r][4kk + 0..3]
                    pa[kk][0] = pack2<T>(sc[0][4 * kk + 0], sc[0][4 * kk + 1]); // row g,     keys 16kk + 2t
                    pa[kk][1] = pack2<T>(sc[1][4 * kk + 0], sc[1][4 * kk + 1]); // row g + 8, keys 16kk + 2t
                    pa[kk][2] = pack2<T>(sc[0][4 * kk + 2], sc[0][4 * kk + 3]); // row g,     keys 16kk + 8 + 2t
                    pa[kk][3] = pack2<T>(sc[1][4 * kk + 2], sc[1][4 * kk + 3]); // row g + 8, keys 16kk + 8 + 2t
                }
            } else {
                __syncwarp(); // this warp's reads of its P rows (previous tile) are done
#pragma unroll
                for (int r = 0; r < R; ++r)
#pragma unroll
                    for (int kk = 0; kk < KPT; ++kk) sP[(ty + 16 * r) * SP + tx + 8 * kk] = sc[r][kk];
                __syncwarp(); // P rows of this warp visible to its lanes (only this warp reads them)
            }

            // ---- probe: running max and row sum after this tile
            if (probe.active) {
                float ls[R];
#pragma unroll
                for (int r = 0; r < R; ++r) {
                    ls[r] = l[r];
#pragma unroll
                    for (int off = 1; off < RED; off <<= 1) ls[r] += __shfl_xor_sync(0xffffffffu, ls[r], off);
                }
                if (probe_r >= 0 && lead && n - t_lo < probe.max_tiles) {
#pragma unroll
                    for (int r = 0; r < R; ++r)
                        if (r == probe_r) {
                            probe.tile_max[n - t_lo] = m[r] * kLn2;
                            probe.tile_sum[n - t_lo] = ls[r];
                        }
                }
            }
        }

        cp_async_wait_all();
        if constexpr (M != Mutant::missing_barrier) {
            __syncthreads(); // B2: V(n) visible; every warp is done reading K(n)
        }
        if (n + 1 < t_hi) {
            load_tile<T, D, BN, S>(sK, Kg + static_cast<long long>(j_base + BN) * kv_row, kv_row,
                                   kv_len - (j_base + BN));
            cp_async_commit();
        }

        if (warp_active) {
            // ---- O += P V(n)
            if constexpr (kMma) {
#pragma unroll
                for (int kk = 0; kk < PK; ++kk) {
#pragma unroll
                    for (int dn = 0; dn < DN; dn += 2) {
                        uint32_t bb[4]; // b0, b1 of O n-tile dn, then of dn + 1
                        if constexpr (kUseLdmatrix) {
                            // matrices (transposed): keys 16kk + 0-7 | 8-15 at column dn*8, then at dn*8 + 8
                            ldsm_x4_trans(bb, sV + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * S + dn * 8 +
                                                  ((lane >> 4) & 1) * 8);
                        } else {
                            const uint16_t* v0 =
                                reinterpret_cast<const uint16_t*>(sV) + (kk * 16 + 2 * t) * S + dn * 8 + g;
                            bb[0] = pack_raw(v0[0], v0[S]);
                            bb[1] = pack_raw(v0[8 * S], v0[9 * S]);
                            bb[2] = pack_raw(v0[8], v0[S + 8]);
                            bb[3] = pack_raw(v0[8 * S + 8], v0[9 * S + 8]);
                        }
                        mma16816<T>(acc[dn], pa[kk], bb[0], bb[1]);
                        mma16816<T>(acc[dn + 1], pa[kk], bb[2], bb[3]);
                    }
                }
            } else {
                const float* sVf = reinterpret_cast<const float*>(sV);
#pragma unroll 2
                for (int k = 0; k < BN; k += 4) {
                    float4 pv[R];
#pragma unroll
                    for (int r = 0; r < R; ++r) pv[r] = *reinterpret_cast<const float4*>(sP + (ty + 16 * r) * SP + k);
#pragma unroll
                    for (int kq = 0; kq < 4; ++kq) {
#pragma unroll
                        for (int c = 0; c < FC; ++c) {
                            const float vv = sVf[(k + kq) * S + tx + 8 * c];
#pragma unroll
                            for (int r = 0; r < R; ++r) {
                                const float pr = kq == 0 ? pv[r].x : kq == 1 ? pv[r].y : kq == 2 ? pv[r].z : pv[r].w;
                                acc[r][c] = fmaf(pr, vv, acc[r][c]);
                            }
                        }
                    }
                }
            }
            if constexpr (M == Mutant::fp16_accumulation) {
                // The mutant's O accumulator is rounded to fp16 once per key
                // tile (after the rescale and the tile's P.V); the row sum at
                // every add (softmax_tile). Same in the CPU twin.
#pragma unroll
                for (int i = 0; i < ACC0; ++i)
#pragma unroll
                    for (int j = 0; j < ACC1; ++j) acc[i][j] = accumulate<M>(acc[i][j], 0.0f);
            }
        }
    }

    // ---- epilogue
    cp_async_wait_all();      // no tile visited: the Q copies are still in flight
    __syncthreads();          // ... and other threads' copies land in rows this warp stages O into
    if (!warp_active) return; // no barrier below

#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int off = 1; off < RED; off <<= 1) l[r] = accumulate<M>(l[r], __shfl_xor_sync(0xffffffffu, l[r], off));

    // Normalize, round to T and stage this warp's rows in sQ (only this warp
    // ever reads those rows of sQ), then copy them out with 16-byte stores.
    bool empty[R];
    float final_shift[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        empty[r] = m[r] == -INFINITY; // the finite sentinel defeats exactly this test
        final_shift[r] = empty[r] ? 0.0f : softmax_shift<M>(m[r]);
    }
    if constexpr (kMma) {
#pragma unroll
        for (int dn = 0; dn < DN; ++dn)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const float o0 = empty[r] ? 0.0f : acc[dn][2 * r] / l[r];
                const float o1 = empty[r] ? 0.0f : acc[dn][2 * r + 1] / l[r];
                *reinterpret_cast<uint32_t*>(sQ + row_of(r) * S + dn * 8 + 2 * t) = pack2<T>(o0, o1);
            }
    } else {
        float* sQf = reinterpret_cast<float*>(sQ);
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int c = 0; c < FC; ++c) sQf[row_of(r) * S + tx + 8 * c] = empty[r] ? 0.0f : acc[r][c] / l[r];
    }
    __syncwarp();
    {
        constexpr int kEpc = 16 / static_cast<int>(sizeof(T));
        constexpr int kCpr = D / kEpc;
        T* Og = P.o + (static_cast<long long>(P.q_start[b]) + i0) * q_row + static_cast<long long>(h) * D;
        for (int idx = lane; idx < 16 * kCpr; idx += 32) {
            const int rr = idx / kCpr, c = (idx % kCpr) * kEpc;
            const int row = kMma ? warp * 16 + rr : 4 * warp + (rr & 3) + 16 * (rr >> 2); // this warp's rows
            if (i0 + row < q_len)
                *reinterpret_cast<uint4*>(Og + row * q_row + c) = *reinterpret_cast<const uint4*>(sQ + row * S + c);
        }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const int row = i0 + row_of(r);
        if (lead && row < q_len)
            P.lse[(static_cast<long long>(P.q_start[b]) + row) * sh.n_q_heads + h] =
                empty[r] ? -INFINITY : final_shift[r] * kLn2 + logf(l[r]);
    }

    // ---- probe: final row statistics, O, and the reconstructed stages
    if (probe.active) {
        if (probe_r >= 0) {
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r != probe_r) continue;
                // O as written (rounded to T), from the staged row.
                if constexpr (kMma) {
#pragma unroll
                    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
                        for (int e = 0; e < 2; ++e)
                            probe.o[dn * 8 + 2 * t + e] = to_f<T>(sQ[row_of(r) * S + dn * 8 + 2 * t + e]);
                } else {
#pragma unroll
                    for (int c = 0; c < FC; ++c)
                        probe.o[tx + 8 * c] = reinterpret_cast<const float*>(sQ)[row_of(r) * S + tx + 8 * c];
                }
                if (lead) {
                    probe.scalars[0] = empty[r] ? -INFINITY : m[r] * kLn2;
                    probe.scalars[2] = l[r];
                }
            }
        }
        __syncwarp(); // the row's raw[] entries, written by the lanes sharing it, visible to its lead
        if (probe_r >= 0 && lead) {
            // The kernel never forms normalized P (O is normalized at the end):
            // exps and p are reconstructed from raw (as stored), the final row
            // max and row sum, in the kernel's log2 units, so exps are the
            // values the kernel summed (up to earlier tiles' rescales). Keys in
            // tiles never visited keep exps = p = 0.
            float mx = 0.0f;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r != probe_r || empty[r]) continue;
                const int j_end = min(kv_len, t_hi * BN);
                for (int j = t_lo * BN; j < j_end; ++j) {
                    const bool vis = key_visible<M>(sh, pos[r], j);
                    const float e = exp2f((vis ? __fmul_rn(probe.raw[j], scale_log2) : masked_log2) - final_shift[r]);
                    probe.exps[j] = e;
                    probe.p[j] = e / l[r];
                    mx = fmaxf(mx, e);
                }
            }
            probe.scalars[1] = mx;
        }
    }
}

// The two paths differ only in launch bounds. fp32: (128, 1) lets the
// register-heavy FFMA path use up to 255 registers; without the hint ptxas
// capped fp32 D = 80 at 168 registers and spilled (its 70-140 KB of shared
// memory allow at most 2-3 blocks per SM anyway). mma path: no hint (128-245
// registers, no spills; a min-blocks hint of 2 made ptxas use more).
template <class T, int D, Mutant M>
__global__ void __launch_bounds__(kThreads) flash_prefill_mma_kernel(FlashParams<T> P, DeviceProbeView probe) {
    flash_prefill_body<T, D, M>(P, probe);
}
template <int D, Mutant M>
__global__ void __launch_bounds__(kThreads, 1) flash_prefill_f32_kernel(FlashParams<float> P, DeviceProbeView probe) {
    flash_prefill_body<float, D, M>(P, probe);
}

// --------------------------------------------------------------------- host

template <class T, int D, Mutant M>
void launch(DeviceProblem<T>& dp, const DeviceProbeView& pv) {
    constexpr int smem = smem_bytes<T, D>();
    void (*kernel)(FlashParams<T>, DeviceProbeView);
    if constexpr (kIsMma<T>)
        kernel = flash_prefill_mma_kernel<T, D, M>;
    else
        kernel = flash_prefill_f32_kernel<D, M>;
    if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const int q_blocks = (dp.max_q_len + kBlockM - 1) / kBlockM;
    if (q_blocks == 0 || dp.shape.batch == 0) return;
    FlashParams<T> params{dp.q.get(),       dp.k.get(),        dp.v.get(),      dp.o.get(),       dp.lse.get(),
                          dp.q_start.get(), dp.kv_start.get(), dp.q_lens.get(), dp.kv_lens.get(), dp.shape};
    const dim3 grid(static_cast<unsigned>(q_blocks), static_cast<unsigned>(dp.shape.n_q_heads),
                    static_cast<unsigned>(dp.shape.batch));
    kernel<<<grid, kThreads, smem>>>(params, pv);
    CUDA_CHECK_LAUNCH();
}

// Runs one (T, D, M) build, with the probe when asked.
template <class T, int D, Mutant M>
Observation run_build(const AttentionProblem& p, DeviceProblem<T>& dp, const std::optional<ProbeRequest>& probe) {
    if (!probe) {
        launch<T, D, M>(dp, DeviceProbeView{});
        return dp.download();
    }
    // Tiles the probed row's block visits (same rule as the kernel).
    const int q_len = p.q_lens[probe->seq], kv_len = p.kv_lens[probe->seq];
    const int i0 = probe->token / kBlockM * kBlockM;
    int t_lo, t_hi;
    flash::block_tile_range<M>(dp.shape, q_len, kv_len, i0, std::min(q_len, i0 + kBlockM), flash::block_n(D), t_lo,
                               t_hi);
    const int tiles = t_hi - t_lo;
    DeviceProbe dprobe(p, *probe, tiles, 0);
    launch<T, D, M>(dp, dprobe.view());
    Observation obs = dp.download();
    obs.probe = dprobe.download(tiles, 0);
    return obs;
}

template <class T, int D>
Observation run_dim(const AttentionProblem& p, DeviceProblem<T>& dp, Mutant m,
                    const std::optional<ProbeRequest>& probe) {
    // Mutant kernels exist for fp16 at head_dim 64 only (flash::cuda_mutant_built).
    constexpr bool mutants_built = std::is_same_v<T, __half> && D == 64;
    return dispatch_mutant<&cuda_builds<Family::flash_prefill, mutants_built>>(
        m, "flash_prefill_cuda", [&](auto mc) { return run_build<T, D, decltype(mc)::value>(p, dp, probe); });
}

template <class T>
Observation run_typed(const AttentionProblem& p, DeviceProblem<T>& dp, Mutant m,
                      const std::optional<ProbeRequest>& probe) {
    switch (p.head_dim) {
        case 64:
            return run_dim<T, 64>(p, dp, m, probe);
        case 80:
            return run_dim<T, 80>(p, dp, m, probe);
        case 96:
            return run_dim<T, 96>(p, dp, m, probe);
        case 128:
            return run_dim<T, 128>(p, dp, m, probe);
        case 256:
            return run_dim<T, 256>(p, dp, m, probe);
        default:
            break;
    }
    throw UnsupportedCase("flash_prefill_cuda: head_dim " + std::to_string(p.head_dim) + " not supported");
}

} // namespace

Observation flash_prefill_cuda(const AttentionProblem& p, Mutant m, const std::optional<ProbeRequest>& probe) {
    if (!flash::head_dim_supported(p.head_dim))
        throw UnsupportedCase("flash_prefill_cuda: head_dim " + std::to_string(p.head_dim) +
                              " has no kernel (supported: 64, 80, 96, 128, 256)");
    if (m != Mutant::none && !flash::cuda_mutant_built(p.dtype, p.head_dim))
        throw UnsupportedCase("flash_prefill_cuda: mutant builds are fp16 only, head_dim 64");
    if (probe && (probe->seq < 0 || probe->seq >= p.batch() || probe->head < 0 || probe->head >= p.n_q_heads ||
                  probe->token < 0 || probe->token >= p.q_lens[probe->seq]))
        throw std::out_of_range("flash_prefill_cuda: probe request outside the problem");
    return with_device_problem(p, [&](auto& dp) { return run_typed(p, dp, m, probe); });
}

} // namespace attncheck::kernels
