// The Case's JSON form (docs/case-format.md): parse_case, case_to_json and
// the case files. Parsing is strict: unknown fields, missing required
// fields, wrong JSON types and out-of-range values are each a CaseError
// naming the field, because a replay file that is silently misread is worse
// than one that is refused. A parsed case is validated (case.cpp) before it
// is returned.
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/case/case.hpp"

namespace attncheck {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw CaseError(msg); }

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
        if (auto* v = f.opt("page_size"))
            c.page_size = static_cast<int>(as_int(*v, "features.page_size", 0, CaseLimits::max_page_size));
        if (auto* v = f.opt("page_seed")) {
            if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<long long>() >= 0))
                fail("features.page_seed must be a non-negative integer below 2^64");
            c.page_seed = v->get<std::uint64_t>();
        }
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
    // Only paged cases carry the paging fields, so that every contiguous
    // case (the whole corpus before paging) keeps its bytes.
    if (c.page_size > 0) {
        j["features"]["page_size"] = c.page_size;
        j["features"]["page_seed"] = c.page_seed;
    }
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
