#include "engine/case/case_distribution.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "engine/case/case_sampler.hpp"
#include "engine/case/paged_kv.hpp"

namespace attncheck {

const CaseDistribution& case_distribution() {
    // Weights are relative within an axis. Rare alternatives come last: they
    // are reached only by large draws, so RapidCheck's early (small) cases
    // and every shrink step stay near the front.
    static const CaseDistribution d{
        .dtype = {"element type (a target: its own only)",
                  {{DType::f32, 1, "fp32"}, {DType::f16, 1, "fp16"}, {DType::bf16, 1, "bf16"}}},
        .head_dim = {"head dim (a target: its own only)",
                     {{1, 2},   {2, 2},   {3, 1},   {4, 2},   {5, 1},   {7, 1},   {8, 2},   {12, 1},  {16, 2}, {24, 1},
                      {31, 1},  {32, 2},  {33, 1},  {48, 1},  {63, 1},  {64, 4},  {65, 1},  {72, 1},  {80, 2}, {96, 2},
                      {100, 1}, {112, 1}, {127, 1}, {128, 4}, {129, 1}, {160, 1}, {192, 1}, {255, 1}, {256, 2}}},
        .heads = {"n_q_heads/n_kv_heads (over DrawLimits::max_q_heads left out)",
                  {{{1, 1}, 3, "one head"},
                   {{2, 1}, 3, "MQA"},
                   {{2, 2}, 2, "MHA"},
                   {{4, 2}, 3, "GQA 2: the smallest case a wrong head map shows in"},
                   {{3, 1}, 2, "MQA, odd group"},
                   {{4, 1}, 2, "MQA"},
                   {{6, 2}, 1, "GQA 3"},
                   {{8, 2}, 2, "GQA 4"},
                   {{4, 4}, 1, "MHA"},
                   {{6, 3}, 1, "GQA 2, odd kv heads"},
                   {{8, 1}, 2, "MQA 8"},
                   {{12, 2}, 2, "GQA 6, Qwen2-1.5B"},
                   {{14, 2}, 2, "GQA 7, Qwen2-0.5B"},
                   {{16, 2}, 1, "GQA 8, Qwen2.5-3B"},
                   {{28, 4}, 2, "GQA 7, Qwen2-7B"},
                   {{32, 4}, 1, "GQA 8"},
                   {{32, 8}, 1, "GQA 4, Llama-3-8B"}}},
        .batch = {"sequences (over DrawLimits::max_batch left out)", {{1, 6}, {2, 3}, {3, 2}}},
        .q_len = {"query tokens of a sequence (a decode target: 1 or 0 only)",
                  {{QLen::one, 3, "1: one new token (a decode step)"},
                   {QLen::own, 8, "drawn from `length`: shorter or longer than kv_len"},
                   {QLen::empty, 1, "0: an empty sequence"},
                   {QLen::same_as_kv, 2, "= kv_len: prefill without a cache"}}},
        .length = {"kv_len of every sequence, q_len of some (capped to DrawLimits, then halved to fit max_work)",
                   {{{0, 0}, 2, "empty"},
                    {{1, 1}, 2},
                    {{2, 8}, 6, "short"},
                    {{15, 15}, 1, "tile edge"},
                    {{16, 16}, 1, "tile edge"},
                    {{17, 17}, 1, "tile edge"},
                    {{31, 31}, 1, "tile edge"},
                    {{32, 32}, 1, "tile edge"},
                    {{33, 33}, 1, "tile edge"},
                    {{63, 63}, 1, "tile edge"},
                    {{64, 64}, 1, "tile edge"},
                    {{65, 65}, 1, "tile edge"},
                    {{127, 127}, 1, "tile edge"},
                    {{128, 128}, 1, "tile edge"},
                    {{129, 129}, 1, "tile edge"},
                    {{9, IntRange::kMaxLen}, 8, "any"},
                    {{256, IntRange::kMaxCache}, 6, "long KV cache: kv_len of decode steps only"}}},
        .mask = {"mask",
                 {{Mask::none, 4, "none"},
                  {Mask::causal, 4, "causal, bottom-right"},
                  {Mask::causal_window, 2, "causal with a sliding window of `window` keys"}}},
        .window = {"sliding window, keys", {{{1, 1}, 1, "the query's own key only"}, {{2, 16}, 2}, {{17, 64}, 2}}},
        .splits =
            {"split-KV partitions (targets that split)",
             {{{1, 1}, 4, "no split"}, {{2, 2}, 1}, {{3, 8}, 3}, {{9, 19}, 2, "more splits than tiles: empty chunks"}}},
        .scale = {"softmax scale",
                  {{std::nullopt, 12, "1/sqrt(head_dim)"},
                   {1.0, 1, "folded into Q"},
                   {0.5, 1},
                   {1.0 / 3.0, 1},
                   {0.3, 1},
                   {0.01, 1, "nearly uniform attention"}}},
        .dist = {"data distribution",
                 {{Dist::sparse_int, 2, "sparse_int: 70% zeros, else +-1..3, exact in every dtype"},
                  {Dist::normal, 5, "normal (Irwin-Hall, support +-6)"},
                  {Dist::uniform, 2, "uniform in [-1, 1)"}}},
        // Large logits put a row outside the error model's meaningful range
        // once S or P is stored in fp16/bf16, and the error-model sweep must
        // judge most of its rows (tests/test_error_model.cpp): magnitudes far
        // from 1, here and through outliers, sinks and biases, stay rare.
        // Overflow itself the gates probe on their own (row_max's shift).
        .logit_level = {"size of the largest logits: q_scale * k_scale = level / 3 (then fitted to the dtype)",
                        {{1.0, 30, "order 1"},
                         {1e-3, 15, "tiny: nearly uniform attention"},
                         {11.0, 9, "exp overflows fp16 without the row max"},
                         {88.7, 1, "exp overflows fp32 without the row max"},
                         {1000.0, 1},
                         {65504.0, 1, "fp16's largest finite value"}}},
        .k_skew = {"k_scale / q_scale at the same logit level",
                   {{1.0, 4, "Q and K alike"}, {30.0, 1, "large K"}, {1.0 / 30.0, 1, "large Q"}}},
        .v_scale = {"V magnitude", {{1.0, 4}, {1e-3, 1}, {100.0, 1}}},
        .jitter = {"spread of the magnitudes around their level",
                   {{Jitter::none, 2, "none"},
                    {Jitter::spread, 3, "Q, K and V scales each times 2^x, x uniform in [-1, 1]"}}},
        .outliers = {"massive-activation channels of Q and K",
                     {{Outliers::none, 30, "none"},
                      {Outliers::first, 1, "channel 0"},
                      {Outliers::last, 1, "the last channel"},
                      {Outliers::first_and_last, 1, "channel 0 and the last"},
                      {Outliers::any_one, 1, "one channel anywhere"}}},
        .outlier_factor = {"outlier channels' factor (on Q and K: their products grow by its square)",
                           {{10.0, 3}, {100.0, 1}}},
        .sink_tokens = {"attention-sink keys at the start", {{{0, 0}, 12, "none"}, {{1, 1}, 1}, {{2, 3}, 1}}},
        .sink_factor = {"sink keys' factor", {{4.0, 2}, {20.0, 1}, {50.0, 1}}},
        .k_bias = {"K bias, times k_scale",
                   {{0.0, 8, "none"}, {0.3, 1}, {2.0, 1}, {50.0, 1, "a bias that dominates K, Qwen-style"}}},
        .q_bias = {"Q bias, times q_scale", {{0.0, 8, "none"}, {0.5, 1}, {2.0, 1}}},
        .ties = {"equal rows",
                 {{Ties::none, 10, "none"}, {Ties::k, 1, "constant K: tied scores"}, {Ties::v, 1, "constant V"}}},
        // In Q only: that row's output is undefined and not judged, but no
        // other row may change (batch, padding and causal gates compare
        // rows). Not in K or V: a NaN in a masked key of a visited tile
        // reaches tiled kernels' rows as 0 * NaN (docs/kernel-families.md).
        .special = {"a non-finite value in one query element",
                    {{Special::none, 42, "none"},
                     {Special::nan, 1, "NaN"},
                     {Special::pos_inf, 1, "+inf"},
                     {Special::neg_inf, 1, "-inf"}}},
        // Drawn last, so that adding it left every earlier draw as it was.
        // The lengths' tile edges (16, 32, 64, 128 +-1) are page edges too.
        .page_size = {"KV cache pages, keys per page (targets that page; 0: contiguous)",
                      {{0, 10, "contiguous"},
                       {16, 2},
                       {32, 1},
                       {64, 1},
                       {128, 1},
                       {256, 1},
                       {1, 1, "one key a page: every key on a page boundary"},
                       {5, 1, "pages of 5: boundaries inside every tile"}}},
    };
    return d;
}

namespace {

template <class T>
using Alts = std::vector<Alt<T>>;

// The cumulative-weight walk: u shrinks toward 0, the choice toward alts[0].
template <class T>
T pick(Chooser& ch, const Alts<T>& alts) {
    long long total = 0;
    for (const auto& a : alts) total += a.weight;
    long long u = ch.range(0, total);
    for (const auto& a : alts) {
        if (u < a.weight) return a.value;
        u -= a.weight;
    }
    return alts.back().value; // a chooser that answered outside its range
}
template <class T>
T pick(Chooser& ch, const Axis<T>& axis) {
    return pick(ch, axis.alts);
}

template <class T, class Keep>
Alts<T> only(const Axis<T>& axis, Keep keep) {
    Alts<T> out;
    for (const auto& a : axis.alts)
        if (keep(a.value)) out.push_back(a);
    if (out.empty())
        throw std::invalid_argument(
            fmt::format("case distribution: no alternative of '{}' fits the limits", axis.what));
    return out;
}

int draw_in(Chooser& ch, int lo, int hi) { return lo >= hi ? lo : static_cast<int>(ch.range(lo, hi + 1LL)); }

// A length from the `length` axis. Decode steps may have long caches;
// prefill lengths stop at max_len.
int draw_length(Chooser& ch, const DrawLimits& lim, bool decode_step) {
    const int cap = decode_step ? std::max(lim.max_len, lim.max_decode_len) : lim.max_len;
    auto hi_of = [&](IntRange r) {
        const int hi = r.hi == IntRange::kMaxLen     ? lim.max_len
                       : r.hi == IntRange::kMaxCache ? lim.max_decode_len
                                                     : r.hi;
        return std::min(hi, cap);
    };
    const IntRange r = pick(ch, only(case_distribution().length, [&](IntRange r) {
                                return (decode_step || r.hi != IntRange::kMaxCache) && r.lo <= hi_of(r);
                            }));
    return draw_in(ch, r.lo, hi_of(r));
}

// A factor 2^x, x in [-1, 1], whose draw shrinks toward x = 0.
double spread(Chooser& ch) {
    constexpr long long kSteps = 512;
    const long long u = ch.range(0, 2 * kSteps + 1);
    const long long x = (u + 1) / 2 * (u % 2 ? -1 : 1);
    return std::exp2(static_cast<double>(x) / kSteps);
}

} // namespace

long long case_work(const Case& c) {
    long long w = 0;
    for (int s = 0; s < c.batch(); ++s)
        w += static_cast<long long>(std::max(c.q_lens[s], 1)) * std::max(c.kv_lens[s], 1) * c.n_q_heads * c.head_dim;
    return w;
}

void cap_case_work(Case& c, long long max_work) {
    while (case_work(c) > max_work) {
        int* longest = &c.q_lens[0];
        for (int& x : c.q_lens) longest = x > *longest ? &x : longest;
        for (int& x : c.kv_lens) longest = x > *longest ? &x : longest;
        if (*longest <= 1) break;
        *longest /= 2;
    }
}

Case draw_case(const CaseFilter& f, const DrawLimits& lim, Chooser& ch) {
    const CaseDistribution& D = case_distribution();
    const bool any = f.head_dims.empty();
    Case c;
    c.dtype = pick(ch, only(D.dtype, [&](DType t) { return any || f.head_dims.count(t) > 0; }));
    if (any) {
        c.head_dim = pick(ch, D.head_dim);
    } else {
        const std::vector<int>& dims = f.head_dims.at(c.dtype);
        Alts<int> alts;
        for (const auto& a : D.head_dim.alts)
            if (std::find(dims.begin(), dims.end(), a.value) != dims.end()) alts.push_back(a);
        for (int d : dims)
            if (std::none_of(alts.begin(), alts.end(), [d](const Alt<int>& a) { return a.value == d; }))
                alts.push_back({d, 1});
        if (alts.empty()) throw std::invalid_argument("case distribution: the filter allows no head dim");
        c.head_dim = pick(ch, alts);
    }
    const HeadPair hp = pick(ch, only(D.heads, [&](HeadPair p) { return p.q <= lim.max_q_heads; }));
    c.n_q_heads = hp.q;
    c.n_kv_heads = hp.kv;

    const int batch = pick(ch, only(D.batch, [&](int b) { return b <= lim.max_batch; }));
    const Alts<QLen> q_modes =
        only(D.q_len, [&](QLen m) { return !f.decode_only || m == QLen::one || m == QLen::empty; });
    c.q_lens.clear();
    c.kv_lens.clear();
    for (int s = 0; s < batch; ++s) {
        const QLen m = pick(ch, q_modes);
        const bool decode_step = m == QLen::one || m == QLen::empty;
        const int kv = draw_length(ch, lim, decode_step);
        c.kv_lens.push_back(kv);
        c.q_lens.push_back(m == QLen::one          ? 1
                           : m == QLen::empty      ? 0
                           : m == QLen::same_as_kv ? kv
                                                   : draw_length(ch, lim, false));
    }
    cap_case_work(c, lim.max_work);

    const Mask mask = pick(ch, D.mask);
    c.causal = mask != Mask::none;
    if (mask == Mask::causal_window) {
        const IntRange w = pick(ch, D.window);
        c.window = draw_in(ch, w.lo, w.hi);
    }
    const IntRange splits = pick(ch, D.splits);
    c.num_splits = draw_in(ch, splits.lo, splits.hi);
    c.scale = pick(ch, D.scale);

    DataRecipe& d = c.data;
    d.dist = pick(ch, D.dist);
    d.seed = static_cast<std::uint64_t>(ch.range(0, 1LL << 30));
    // About 3 sigma of q.k for normal data: the largest logits reach the level.
    const double level = pick(ch, D.logit_level);
    const double k_skew = pick(ch, D.k_skew);
    const double qk = std::sqrt(level / 3.0);
    d.q_scale = qk / std::sqrt(k_skew);
    d.k_scale = qk * std::sqrt(k_skew);
    d.v_scale = pick(ch, D.v_scale);
    if (pick(ch, D.jitter) == Jitter::spread) {
        d.q_scale *= spread(ch);
        d.k_scale *= spread(ch);
        d.v_scale *= spread(ch);
    }
    const int last = c.head_dim - 1;
    switch (pick(ch, D.outliers)) {
        case Outliers::none:
            break;
        case Outliers::first:
            d.outlier_channels = {0};
            break;
        case Outliers::last:
            d.outlier_channels = {last};
            break;
        case Outliers::first_and_last:
            d.outlier_channels = last > 0 ? std::vector<int>{0, last} : std::vector<int>{0};
            break;
        case Outliers::any_one:
            d.outlier_channels = {draw_in(ch, 0, last)};
            break;
    }
    if (!d.outlier_channels.empty()) d.outlier_factor = pick(ch, D.outlier_factor);
    const IntRange sinks = pick(ch, D.sink_tokens);
    d.sink_tokens = draw_in(ch, sinks.lo, sinks.hi);
    if (d.sink_tokens > 0) d.sink_factor = pick(ch, D.sink_factor);
    d.k_bias = pick(ch, D.k_bias) * d.k_scale;
    d.q_bias = pick(ch, D.q_bias) * d.q_scale;
    const Ties ties = pick(ch, D.ties);
    d.constant_k = ties == Ties::k;
    d.constant_v = ties == Ties::v;
    if (const Special sp = pick(ch, D.special); sp != Special::none) {
        std::vector<int> with_q;
        for (int s = 0; s < c.batch(); ++s)
            if (c.q_lens[s] > 0) with_q.push_back(s);
        if (!with_q.empty()) {
            SpecialValue sv;
            sv.tensor = TensorId::q;
            sv.seq = with_q[static_cast<std::size_t>(ch.range(0, static_cast<long long>(with_q.size())))];
            sv.token = draw_in(ch, 0, c.q_lens[sv.seq] - 1);
            sv.head = draw_in(ch, 0, c.n_q_heads - 1);
            sv.dim = draw_in(ch, 0, last);
            constexpr double inf = std::numeric_limits<double>::infinity();
            sv.value = sp == Special::nan       ? std::numeric_limits<double>::quiet_NaN()
                       : sp == Special::pos_inf ? inf
                                                : -inf;
            d.specials.push_back(sv);
        }
    }
    if (f.paged_kv) {
        c.page_size = pick(ch, D.page_size);
        if (c.page_size > 0) c.page_seed = static_cast<std::uint64_t>(ch.range(0, 1LL << 30));
        // A pool far below the case limit, or no pages.
        if (c.page_size > 0 &&
            paged_pool_elems(c.kv_lens, c.page_size, c.n_kv_heads, c.head_dim) > CaseLimits::max_elements / 4) {
            c.page_size = 0;
            c.page_seed = 0;
        }
    }
    fit_recipe_to_dtype(c);
    validate(c);
    return c;
}

namespace {

template <class E>
requires std::is_enum_v<E> std::string value_text(E) { return {}; }
std::string value_text(int v) { return fmt::format("{}", v); }
std::string value_text(double v) { return fmt::format("{:g}", v); }
std::string value_text(const std::optional<double>& v) { return v ? value_text(*v) : std::string(); }
std::string value_text(HeadPair p) { return fmt::format("{}/{}", p.q, p.kv); }
std::string value_text(IntRange r) {
    if (r.lo == r.hi) return fmt::format("{}", r.lo);
    const std::string hi = r.hi == IntRange::kMaxLen     ? "max_len"
                           : r.hi == IntRange::kMaxCache ? "max_decode_len"
                                                         : fmt::format("{}", r.hi);
    return fmt::format("{}-{}", r.lo, hi);
}

template <class T>
void add_rows(std::vector<DistributionRow>& rows, const char* name, const Axis<T>& axis) {
    long long total = 0;
    for (const auto& a : axis.alts) total += a.weight;
    for (const auto& a : axis.alts) {
        const std::string v = value_text(a.value), note = a.note;
        rows.push_back({name,
                        v.empty()      ? note
                        : note.empty() ? v
                                       : fmt::format("{} ({})", v, note),
                        a.weight, 100.0 * a.weight / static_cast<double>(total)});
    }
}

} // namespace

std::vector<DistributionRow> case_distribution_rows() {
    std::vector<DistributionRow> rows;
    const CaseDistribution& D = case_distribution();
#define ATTNCHECK_AXIS_ROWS(type, name) add_rows(rows, #name, D.name);
    ATTNCHECK_CASE_AXES(ATTNCHECK_AXIS_ROWS)
#undef ATTNCHECK_AXIS_ROWS
    return rows;
}

std::string case_distribution_table() {
    const CaseDistribution& D = case_distribution();
    std::string s =
        "The case distribution (engine/case/case_distribution.hpp): the RapidCheck generators, the fuzz case\n"
        "builder and the seeded sampler all draw from it. Simplest first; shrinking moves toward the first.\n"
        "A target or a limit leaves alternatives out; the rest keep their weights.\n\n";
    s += fmt::format("{:15} {:68} {:>6} {:>7}\n", "axis", "alternative", "weight", "share");
    std::string last;
    for (const auto& r : case_distribution_rows()) {
        if (r.axis != last && !last.empty()) s += "\n";
        last = r.axis;
        s += fmt::format("{:15} {:68} {:>6} {:>6.1f}%\n", r.axis, r.alternative, r.weight, r.share);
    }
    s += "\nAxes\n";
#define ATTNCHECK_AXIS_WHAT(type, name) s += fmt::format("  {:15} {}\n", #name, D.name.what);
    ATTNCHECK_CASE_AXES(ATTNCHECK_AXIS_WHAT)
#undef ATTNCHECK_AXIS_WHAT
    return s;
}

} // namespace attncheck
