// Case validation and its JSON form. Parsing is strict: unknown fields,
// missing required fields, wrong JSON types and out-of-range values are each
// a CaseError naming the field, because a replay file that is silently
// misread is worse than one that is refused.
#include "engine/case/case.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace attncheck {

using nlohmann::json;

const char* dist_name(Dist d) {
    switch (d) {
        case Dist::normal:
            return "normal";
        case Dist::uniform:
            return "uniform";
        case Dist::sparse_int:
            return "sparse_int";
    }
    return "?";
}

const char* tensor_name(TensorId t) {
    switch (t) {
        case TensorId::q:
            return "q";
        case TensorId::k:
            return "k";
        case TensorId::v:
            return "v";
    }
    return "?";
}

namespace {

// Bitwise equality for doubles, so NaN == NaN and 0.0 != -0.0: two cases are
// equal exactly when they replay the same bits.
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!same_bits(a[i], b[i])) return false;
    return true;
}

} // namespace

bool SpecialValue::operator==(const SpecialValue& o) const {
    return tensor == o.tensor && seq == o.seq && token == o.token && head == o.head && dim == o.dim &&
           same_bits(value, o.value);
}
bool DataRecipe::operator==(const DataRecipe& o) const {
    return dist == o.dist && seed == o.seed && same_bits(q_scale, o.q_scale) && same_bits(k_scale, o.k_scale) &&
           same_bits(v_scale, o.v_scale) && outlier_channels == o.outlier_channels &&
           same_bits(outlier_factor, o.outlier_factor) && sink_tokens == o.sink_tokens &&
           same_bits(sink_factor, o.sink_factor) && same_bits(q_bias, o.q_bias) && same_bits(k_bias, o.k_bias) &&
           constant_q == o.constant_q && constant_k == o.constant_k && constant_v == o.constant_v &&
           specials == o.specials;
}
bool ExplicitValues::operator==(const ExplicitValues& o) const {
    return same_bits(q, o.q) && same_bits(k, o.k) && same_bits(v, o.v);
}
bool Case::operator==(const Case& o) const {
    bool scale_eq = scale.has_value() == o.scale.has_value() && (!scale || same_bits(*scale, *o.scale));
    return n_q_heads == o.n_q_heads && n_kv_heads == o.n_kv_heads && head_dim == o.head_dim && q_lens == o.q_lens &&
           kv_lens == o.kv_lens && causal == o.causal && window == o.window && num_splits == o.num_splits && scale_eq &&
           dtype == o.dtype && data == o.data && values == o.values;
}

double Case::effective_scale() const { return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(head_dim)); }

// ---------------------------------------------------------------- validation

namespace {

[[noreturn]] void fail(const std::string& msg) { throw CaseError(msg); }

void check_positive_finite(double x, const char* field) {
    if (!std::isfinite(x) || !(x > 0)) fail(fmt::format("{} must be a positive finite number (got {})", field, x));
}

double dist_bound(Dist d) {
    switch (d) {
        case Dist::normal:
            return 6.0; // Irwin-Hall(12) - 6
        case Dist::uniform:
            return 1.0; // [-1, 1)
        case Dist::sparse_int:
            return 3.0; // integers in [-3, 3]
    }
    return 0.0;
}

long long token_total(const std::vector<int>& lens) {
    long long t = 0;
    for (int l : lens) t += l;
    return t;
}

} // namespace

double recipe_max_abs(const Case& c, TensorId t) {
    const DataRecipe& r = c.data;
    const double b = dist_bound(r.dist);
    const double outlier = r.outlier_channels.empty() ? 1.0 : std::max(1.0, r.outlier_factor);
    switch (t) {
        case TensorId::q:
            return (r.q_scale * b + 6.0 * std::fabs(r.q_bias) + (r.sink_tokens > 0 ? r.q_scale : 0.0)) * outlier;
        case TensorId::k: {
            double plain = r.k_scale * b + 6.0 * std::fabs(r.k_bias);
            double sink = r.sink_tokens > 0 ? r.sink_factor * r.k_scale : 0.0;
            return std::max(plain, sink) * outlier;
        }
        case TensorId::v:
            return r.v_scale * b;
    }
    return 0.0;
}

void validate(const Case& c) {
    using L = CaseLimits;
    if (c.n_q_heads < 1 || c.n_q_heads > L::max_heads)
        fail(fmt::format("shape.n_q_heads must be in [1, {}] (got {})", L::max_heads, c.n_q_heads));
    if (c.n_kv_heads < 1 || c.n_kv_heads > L::max_heads)
        fail(fmt::format("shape.n_kv_heads must be in [1, {}] (got {})", L::max_heads, c.n_kv_heads));
    if (c.n_q_heads % c.n_kv_heads != 0)
        fail(
            fmt::format("shape.n_q_heads ({}) must be a multiple of shape.n_kv_heads ({})", c.n_q_heads, c.n_kv_heads));
    if (c.head_dim < 1 || c.head_dim > L::max_head_dim)
        fail(fmt::format("shape.head_dim must be in [1, {}] (got {})", L::max_head_dim, c.head_dim));
    if (c.q_lens.empty()) fail("shape: batch must be at least 1");
    if (c.batch() > L::max_batch)
        fail(fmt::format("shape: batch must be at most {} (got {})", L::max_batch, c.batch()));
    if (c.kv_lens.size() != c.q_lens.size())
        fail(fmt::format("shape: q_lens has {} entries but kv_lens has {}; both need one per sequence", c.q_lens.size(),
                         c.kv_lens.size()));
    for (int b = 0; b < c.batch(); ++b) {
        if (c.q_lens[b] < 0 || c.q_lens[b] > L::max_len)
            fail(fmt::format("shape.q_lens[{}] must be in [0, {}] (got {})", b, L::max_len, c.q_lens[b]));
        if (c.kv_lens[b] < 0 || c.kv_lens[b] > L::max_len)
            fail(fmt::format("shape.kv_lens[{}] must be in [0, {}] (got {})", b, L::max_len, c.kv_lens[b]));
    }
    const long long q_elems = token_total(c.q_lens) * c.n_q_heads * c.head_dim;
    const long long kv_elems = token_total(c.kv_lens) * c.n_kv_heads * c.head_dim;
    if (q_elems > L::max_elements || kv_elems > L::max_elements)
        fail(fmt::format("shape: case too large ({} Q elements, {} K elements; limit {} per tensor)", q_elems, kv_elems,
                         L::max_elements));
    if (c.window < 0) fail(fmt::format("features.window must be >= 0 (0 = none; got {})", c.window));
    if (c.window > 0 && !c.causal) fail("features.window needs features.causal = true (a window is causal-only)");
    if (c.num_splits < 1 || c.num_splits > L::max_splits)
        fail(fmt::format("features.num_splits must be in [1, {}] (got {})", L::max_splits, c.num_splits));
    if (c.scale) {
        if (!std::isfinite(*c.scale) || *c.scale == 0.0 || std::fabs(*c.scale) > 1e6)
            fail(fmt::format("features.scale must be finite, non-zero and |scale| <= 1e6 (got {})", *c.scale));
    }

    const DataRecipe& r = c.data;
    check_positive_finite(r.q_scale, "data.q_scale");
    check_positive_finite(r.k_scale, "data.k_scale");
    check_positive_finite(r.v_scale, "data.v_scale");
    check_positive_finite(r.outlier_factor, "data.outlier_factor");
    check_positive_finite(r.sink_factor, "data.sink_factor");
    if (!std::isfinite(r.q_bias) || !std::isfinite(r.k_bias)) fail("data.q_bias and data.k_bias must be finite");
    std::set<int> seen;
    for (int ch : r.outlier_channels) {
        if (ch < 0 || ch >= c.head_dim)
            fail(fmt::format("data.outlier_channels: channel {} outside [0, head_dim={})", ch, c.head_dim));
        if (!seen.insert(ch).second) fail(fmt::format("data.outlier_channels: channel {} listed twice", ch));
    }
    if (r.sink_tokens < 0 || r.sink_tokens > L::max_len)
        fail(fmt::format("data.sink_tokens must be in [0, {}] (got {})", L::max_len, r.sink_tokens));

    const double maxf = max_finite(c.dtype);
    if (!c.values) {
        for (TensorId t : {TensorId::q, TensorId::k, TensorId::v}) {
            double m = recipe_max_abs(c, t);
            if (!(m <= maxf))
                fail(fmt::format("data: the recipe can produce |{}| up to {:g}, above {}'s largest finite value {:g}",
                                 tensor_name(t), m, dtype_name(c.dtype), maxf));
        }
    } else {
        const ExplicitValues& ev = *c.values;
        auto check = [&](const std::vector<double>& vals, long long expect, const char* name) {
            if (static_cast<long long>(vals.size()) != expect)
                fail(fmt::format("values.{} has {} numbers; the shape needs {}", name, vals.size(), expect));
            for (size_t i = 0; i < vals.size(); ++i)
                if (std::isfinite(vals[i]) && std::fabs(vals[i]) > maxf)
                    fail(fmt::format("values.{}[{}] = {:g} overflows {} (largest finite {:g})", name, i, vals[i],
                                     dtype_name(c.dtype), maxf));
        };
        check(ev.q, q_elems, "q");
        check(ev.k, kv_elems, "k");
        check(ev.v, kv_elems, "v");
    }
    for (size_t i = 0; i < r.specials.size(); ++i) {
        const SpecialValue& s = r.specials[i];
        const bool is_q = s.tensor == TensorId::q;
        if (s.seq < 0 || s.seq >= c.batch())
            fail(fmt::format("data.specials[{}].seq {} outside [0, {})", i, s.seq, c.batch()));
        const int len = is_q ? c.q_lens[s.seq] : c.kv_lens[s.seq];
        const int heads = is_q ? c.n_q_heads : c.n_kv_heads;
        if (s.token < 0 || s.token >= len)
            fail(fmt::format("data.specials[{}].token {} outside [0, {}) for sequence {}", i, s.token, len, s.seq));
        if (s.head < 0 || s.head >= heads)
            fail(fmt::format("data.specials[{}].head {} outside [0, {})", i, s.head, heads));
        if (s.dim < 0 || s.dim >= c.head_dim)
            fail(fmt::format("data.specials[{}].dim {} outside [0, {})", i, s.dim, c.head_dim));
        if (std::isfinite(s.value) && std::fabs(s.value) > maxf)
            fail(fmt::format("data.specials[{}].value {:g} overflows {}", i, s.value, dtype_name(c.dtype)));
    }
}

// ---------------------------------------------------------------- JSON

namespace {

// Reads one JSON object field by field and reports leftovers as unknown.
class Fields {
public:
    Fields(const json& j, std::string where) : j_(j), where_(std::move(where)) {
        if (!j_.is_object()) fail(fmt::format("{} must be a JSON object", where_.empty() ? "the case" : where_));
    }
    std::string path(const char* key) const { return where_.empty() ? key : where_ + "." + key; }
    bool has(const char* key) const { return j_.contains(key); }
    const json& get(const char* key) {
        if (!j_.contains(key)) fail(fmt::format("missing required field '{}'", path(key)));
        used_.insert(key);
        return j_.at(key);
    }
    const json* opt(const char* key) {
        if (!j_.contains(key)) return nullptr;
        used_.insert(key);
        return &j_.at(key);
    }
    void finish() const {
        for (auto it = j_.begin(); it != j_.end(); ++it)
            if (!used_.count(it.key())) fail(fmt::format("unknown field '{}'", path(it.key().c_str())));
    }

private:
    const json& j_;
    std::string where_;
    std::set<std::string> used_;
};

long long as_int(const json& v, const std::string& field, long long lo, long long hi) {
    if (!v.is_number_integer()) fail(fmt::format("{} must be an integer", field));
    if (v.is_number_unsigned() && v.get<unsigned long long>() > static_cast<unsigned long long>(hi))
        fail(fmt::format("{} must be in [{}, {}]", field, lo, hi));
    long long x = v.get<long long>();
    if (x < lo || x > hi) fail(fmt::format("{} must be in [{}, {}] (got {})", field, lo, hi, x));
    return x;
}

// Numbers, or the strings "nan", "inf", "-inf" (JSON has no literal for them).
double as_double(const json& v, const std::string& field) {
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
        if (s == "inf") return std::numeric_limits<double>::infinity();
        if (s == "-inf") return -std::numeric_limits<double>::infinity();
    }
    fail(fmt::format("{} must be a number (or \"nan\", \"inf\", \"-inf\")", field));
}

json double_to_json(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    return x;
}

bool as_bool(const json& v, const std::string& field) {
    if (!v.is_boolean()) fail(fmt::format("{} must be true or false", field));
    return v.get<bool>();
}

std::vector<int> as_int_list(const json& v, const std::string& field, long long lo, long long hi) {
    if (!v.is_array()) fail(fmt::format("{} must be an array of integers", field));
    std::vector<int> out;
    for (size_t i = 0; i < v.size(); ++i)
        out.push_back(static_cast<int>(as_int(v[i], fmt::format("{}[{}]", field, i), lo, hi)));
    return out;
}

std::vector<double> as_double_list(const json& v, const std::string& field) {
    if (!v.is_array()) fail(fmt::format("{} must be an array of numbers", field));
    std::vector<double> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) out.push_back(as_double(v[i], fmt::format("{}[{}]", field, i)));
    return out;
}

TensorId as_tensor(const json& v, const std::string& field) {
    if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (s == "q") return TensorId::q;
        if (s == "k") return TensorId::k;
        if (s == "v") return TensorId::v;
    }
    fail(fmt::format("{} must be \"q\", \"k\" or \"v\"", field));
}

// Lengths are given either as one number for every sequence or as a list.
std::vector<int> read_lens(Fields& f, const char* scalar, const char* list, int batch) {
    using L = CaseLimits;
    const bool has_s = f.has(scalar), has_l = f.has(list);
    if (has_s && has_l) fail(fmt::format("give either {} or {}, not both", f.path(scalar), f.path(list)));
    if (!has_s && !has_l) fail(fmt::format("missing required field '{}' (or '{}')", f.path(scalar), f.path(list)));
    if (has_s) {
        int x = static_cast<int>(as_int(f.get(scalar), f.path(scalar), 0, L::max_len));
        return std::vector<int>(static_cast<size_t>(batch), x);
    }
    std::vector<int> v = as_int_list(f.get(list), f.path(list), 0, L::max_len);
    if (static_cast<int>(v.size()) != batch)
        fail(fmt::format("{} has {} entries but shape.batch is {}", f.path(list), v.size(), batch));
    return v;
}

constexpr int kFormatVersion = 1;

} // namespace

Case parse_case(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) { // parse errors, and number overflow (out_of_range 406)
        fail(fmt::format("malformed JSON: {}", e.what()));
    }
    Case c;
    Fields top(j, "");
    long long version = as_int(top.get("version"), "version", 0, 1 << 20);
    if (version != kFormatVersion)
        fail(fmt::format("unsupported case format version {} (this build reads version {})", version, kFormatVersion));

    {
        using L = CaseLimits;
        Fields s(top.get("shape"), "shape");
        int batch = static_cast<int>(as_int(s.get("batch"), "shape.batch", 1, L::max_batch));
        c.n_q_heads = static_cast<int>(as_int(s.get("n_q_heads"), "shape.n_q_heads", 1, L::max_heads));
        c.n_kv_heads = static_cast<int>(as_int(s.get("n_kv_heads"), "shape.n_kv_heads", 1, L::max_heads));
        c.head_dim = static_cast<int>(as_int(s.get("head_dim"), "shape.head_dim", 1, L::max_head_dim));
        c.q_lens = read_lens(s, "q_len", "q_lens", batch);
        c.kv_lens = read_lens(s, "kv_len", "kv_lens", batch);
        s.finish();
    }
    if (const json* fj = top.opt("features")) {
        Fields f(*fj, "features");
        if (auto* v = f.opt("causal")) c.causal = as_bool(*v, "features.causal");
        if (auto* v = f.opt("window"))
            c.window = static_cast<int>(as_int(*v, "features.window", 0, CaseLimits::max_len));
        if (auto* v = f.opt("num_splits"))
            c.num_splits = static_cast<int>(as_int(*v, "features.num_splits", 1, CaseLimits::max_splits));
        if (auto* v = f.opt("scale"); v && !v->is_null()) c.scale = as_double(*v, "features.scale");
        f.finish();
    }
    {
        const json& dj = top.get("dtype");
        auto dt = dj.is_string() ? parse_dtype(dj.get<std::string>()) : std::nullopt;
        if (!dt) fail("dtype must be \"fp32\", \"fp16\" or \"bf16\"");
        c.dtype = *dt;
    }
    {
        Fields d(top.get("data"), "data");
        const json& dist = d.get("dist");
        std::string ds = dist.is_string() ? dist.get<std::string>() : "";
        if (ds == "normal")
            c.data.dist = Dist::normal;
        else if (ds == "uniform")
            c.data.dist = Dist::uniform;
        else if (ds == "sparse_int")
            c.data.dist = Dist::sparse_int;
        else
            fail("data.dist must be \"normal\", \"uniform\" or \"sparse_int\"");
        const json& seed = d.get("seed");
        if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<long long>() >= 0))
            fail("data.seed must be a non-negative integer below 2^64");
        c.data.seed = seed.get<std::uint64_t>();
        DataRecipe& r = c.data;
        if (auto* v = d.opt("q_scale")) r.q_scale = as_double(*v, "data.q_scale");
        if (auto* v = d.opt("k_scale")) r.k_scale = as_double(*v, "data.k_scale");
        if (auto* v = d.opt("v_scale")) r.v_scale = as_double(*v, "data.v_scale");
        if (auto* v = d.opt("outlier_channels"))
            r.outlier_channels = as_int_list(*v, "data.outlier_channels", -(1LL << 31), (1LL << 31) - 1);
        if (auto* v = d.opt("outlier_factor")) r.outlier_factor = as_double(*v, "data.outlier_factor");
        if (auto* v = d.opt("sink_tokens"))
            r.sink_tokens = static_cast<int>(as_int(*v, "data.sink_tokens", 0, CaseLimits::max_len));
        if (auto* v = d.opt("sink_factor")) r.sink_factor = as_double(*v, "data.sink_factor");
        if (auto* v = d.opt("q_bias")) r.q_bias = as_double(*v, "data.q_bias");
        if (auto* v = d.opt("k_bias")) r.k_bias = as_double(*v, "data.k_bias");
        if (auto* v = d.opt("constant_rows")) {
            if (!v->is_array()) fail("data.constant_rows must be an array of \"q\", \"k\", \"v\"");
            for (size_t i = 0; i < v->size(); ++i) {
                TensorId t = as_tensor((*v)[i], fmt::format("data.constant_rows[{}]", i));
                (t == TensorId::q ? r.constant_q : t == TensorId::k ? r.constant_k : r.constant_v) = true;
            }
        }
        if (auto* v = d.opt("specials")) {
            if (!v->is_array()) fail("data.specials must be an array of objects");
            for (size_t i = 0; i < v->size(); ++i) {
                std::string where = fmt::format("data.specials[{}]", i);
                Fields sf((*v)[i], where);
                SpecialValue sv;
                sv.tensor = as_tensor(sf.get("tensor"), where + ".tensor");
                sv.seq = static_cast<int>(as_int(sf.get("seq"), where + ".seq", 0, CaseLimits::max_batch));
                sv.token = static_cast<int>(as_int(sf.get("token"), where + ".token", 0, CaseLimits::max_len));
                sv.head = static_cast<int>(as_int(sf.get("head"), where + ".head", 0, CaseLimits::max_heads));
                sv.dim = static_cast<int>(as_int(sf.get("dim"), where + ".dim", 0, CaseLimits::max_head_dim));
                sv.value = as_double(sf.get("value"), where + ".value");
                sf.finish();
                r.specials.push_back(sv);
            }
        }
        d.finish();
    }
    if (const json* vj = top.opt("values"); vj && !vj->is_null()) {
        Fields v(*vj, "values");
        ExplicitValues ev;
        ev.q = as_double_list(v.get("q"), "values.q");
        ev.k = as_double_list(v.get("k"), "values.k");
        ev.v = as_double_list(v.get("v"), "values.v");
        v.finish();
        c.values = std::move(ev);
    }
    top.finish();
    validate(c);
    return c;
}

std::string case_to_json(const Case& c, int indent) {
    json j;
    j["version"] = kFormatVersion;
    j["shape"] = {{"batch", c.batch()},     {"n_q_heads", c.n_q_heads}, {"n_kv_heads", c.n_kv_heads},
                  {"head_dim", c.head_dim}, {"q_lens", c.q_lens},       {"kv_lens", c.kv_lens}};
    j["features"] = {{"causal", c.causal},
                     {"window", c.window},
                     {"num_splits", c.num_splits},
                     {"scale", c.scale ? double_to_json(*c.scale) : json(nullptr)}};
    j["dtype"] = dtype_name(c.dtype);
    const DataRecipe& r = c.data;
    json constant = json::array();
    if (r.constant_q) constant.push_back("q");
    if (r.constant_k) constant.push_back("k");
    if (r.constant_v) constant.push_back("v");
    json specials = json::array();
    for (const SpecialValue& s : r.specials)
        specials.push_back({{"tensor", tensor_name(s.tensor)},
                            {"seq", s.seq},
                            {"token", s.token},
                            {"head", s.head},
                            {"dim", s.dim},
                            {"value", double_to_json(s.value)}});
    j["data"] = {{"dist", dist_name(r.dist)},
                 {"seed", r.seed},
                 {"q_scale", r.q_scale},
                 {"k_scale", r.k_scale},
                 {"v_scale", r.v_scale},
                 {"outlier_channels", r.outlier_channels},
                 {"outlier_factor", r.outlier_factor},
                 {"sink_tokens", r.sink_tokens},
                 {"sink_factor", r.sink_factor},
                 {"q_bias", r.q_bias},
                 {"k_bias", r.k_bias},
                 {"constant_rows", constant},
                 {"specials", specials}};
    if (c.values) {
        auto arr = [](const std::vector<double>& v) {
            json a = json::array();
            for (double x : v) a.push_back(double_to_json(x));
            return a;
        };
        j["values"] = {{"q", arr(c.values->q)}, {"k", arr(c.values->k)}, {"v", arr(c.values->v)}};
    }
    return j.dump(indent);
}

Case load_case_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(fmt::format("cannot open case file '{}'", path));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return parse_case(ss.str());
    } catch (const CaseError& e) {
        fail(fmt::format("{}: {}", path, e.what()));
    }
}

void save_case_file(const Case& c, const std::string& path) {
    std::ofstream out(path, std::ios::binary);
    if (!out) fail(fmt::format("cannot write case file '{}'", path));
    out << case_to_json(c) << "\n";
    if (!out) fail(fmt::format("error writing case file '{}'", path));
}

} // namespace attncheck
