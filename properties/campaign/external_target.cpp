#include "properties/campaign/external_target.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "properties/campaign/adapter_frame.hpp"

#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#include "engine/cuda/ipc_buffer.hpp"
#endif

namespace attncheck {

using nlohmann::json;

AdapterCapabilities parse_capabilities(const std::string& text) {
    AdapterCapabilities c;
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw std::invalid_argument(std::string("adapter capabilities: not JSON: ") + e.what());
    }
    auto fail = [](const std::string& what) { throw std::invalid_argument("adapter capabilities: " + what); };
    if (!j.is_object()) fail("not a JSON object");
    if (j.value("kind", std::string("attention")) != "attention")
        fail("a " + j.value("kind", std::string()) +
             " adapter, not an attention one (a model adapter runs with --target model)");
    if (j.value("protocol", 0) != 1) fail("protocol must be 1");
    if (!j.contains("name") || !j.at("name").is_string() || j.at("name").get<std::string>().empty())
        fail("'name' must be a non-empty string");
    c.name = j.at("name").get<std::string>();
    if (!j.contains("dtypes") || !j.at("dtypes").is_array() || j.at("dtypes").empty())
        fail("'dtypes' must list the dtypes it takes");
    for (const json& d : j.at("dtypes")) {
        const auto dt = d.is_string() ? parse_dtype(d.get<std::string>()) : std::nullopt;
        if (!dt) fail("unknown dtype " + d.dump());
        c.dtypes.push_back(*dt);
    }
    if (j.contains("head_dims") && !(j.at("head_dims").is_string() && j.at("head_dims") == "any"))
        c.head_dims = j.at("head_dims").get<std::vector<int>>();
    c.causal = j.value("causal", false);
    c.window = j.value("window", false);
    c.gqa = j.value("gqa", false);
    c.batch_invariant = j.value("batch_invariant", false);
    c.max_kv_len = j.value("max_kv_len", 0);
    c.max_batch = j.value("max_batch", 1);
    c.cuda_ipc = j.value("cuda_ipc", false);
    if (c.max_batch < 1 || c.max_batch > 4096) fail("'max_batch' must be in [1, 4096]");
    // One profile for every dtype ("profile"), and optionally one per input
    // dtype ("profiles": {"fp16": {...}}) where an implementation rounds
    // differently by dtype (tensor cores for fp16/bf16, CUDA cores for fp32).
    // A field left out keeps its value from the profile below it: "profile"
    // starts from PrecisionProfile's defaults, a "profiles" entry from "profile".
    auto parse_profile = [&](const json& p, const std::string& where) {
        if (!p.is_object()) fail(where + " must be an object");
        auto dtype_of = [&](const char* key, DType dflt) {
            if (!p.contains(key)) return dflt;
            const auto dt = parse_dtype(p.at(key).get<std::string>());
            if (!dt) fail(where + "." + key + ": unknown dtype");
            return *dt;
        };
        PrecisionProfile r = c.profile;
        r.u_acc = p.value("u_acc", r.u_acc);
        r.scores_stored = p.value("scores_stored", r.scores_stored);
        r.probs_stored = p.value("probs_stored", r.probs_stored);
        r.store = dtype_of("store", r.store);
        r.output = dtype_of("output", r.output);
        r.exp_ulps = p.value("exp_ulps", r.exp_ulps);
        r.kv_tile = p.value("kv_tile", r.kv_tile);
        r.uses_splits = p.value("uses_splits", r.uses_splits);
        if (!(r.u_acc > 0 && r.u_acc < 0.01)) fail(where + ".u_acc must be in (0, 0.01)");
        return r;
    };
    if (j.contains("profile")) c.profile = parse_profile(j.at("profile"), "profile");
    if (j.contains("profiles")) {
        const json& ps = j.at("profiles");
        if (!ps.is_object()) fail("profiles must be an object of dtype: profile");
        for (const auto& [key, p] : ps.items()) {
            const auto dt = parse_dtype(key);
            if (!dt) fail("profiles." + key + ": unknown dtype");
            c.profiles_by_dtype[*dt] = parse_profile(p, "profiles." + key);
        }
    }
    return c;
}

ExternalTarget::ExternalTarget(std::string command)
    : adapter_(std::move(command)), caps_(adapter_.capabilities(parse_capabilities)) {
#ifdef ATTNCHECK_HAVE_CUDA
    // Tensors go through CUDA IPC where the adapter can map them and this
    // process sees a GPU (the adapter is taken to be on the same one).
    if (caps_.cuda_ipc && cuda_device_available(nullptr)) ipc_ = std::make_shared<IpcBuffer>();
#endif
}

ExternalTarget::~ExternalTarget() = default;

std::string ExternalTarget::unsupported(const Case& c) const {
    if (std::find(caps_.dtypes.begin(), caps_.dtypes.end(), c.dtype) == caps_.dtypes.end())
        return fmt::format("{} does not take {}", caps_.name, dtype_name(c.dtype));
    if (!caps_.head_dims.empty() &&
        std::find(caps_.head_dims.begin(), caps_.head_dims.end(), c.head_dim) == caps_.head_dims.end())
        return fmt::format("{} does not take head_dim {}", caps_.name, c.head_dim);
    if (c.causal && !caps_.causal) return caps_.name + " has no causal mask";
    if (c.window > 0 && !caps_.window) return caps_.name + " has no sliding window";
    if (c.n_q_heads != c.n_kv_heads && !caps_.gqa) return caps_.name + " has no GQA";
    for (int n : c.kv_lens)
        if (caps_.max_kv_len > 0 && n > caps_.max_kv_len)
            return fmt::format("{} takes at most {} keys", caps_.name, caps_.max_kv_len);
    return {};
}

PrecisionProfile ExternalTarget::profile(const Case& c) const {
    const auto it = caps_.profiles_by_dtype.find(c.dtype);
    PrecisionProfile p = it != caps_.profiles_by_dtype.end() ? it->second : caps_.profile;
    p.input = c.dtype;
    return p;
}

namespace {

json problem_json(const AttentionProblem& p) {
    return {{"n_q_heads", p.n_q_heads}, {"n_kv_heads", p.n_kv_heads}, {"head_dim", p.head_dim},
            {"q_lens", p.q_lens},       {"kv_lens", p.kv_lens},       {"causal", p.causal},
            {"window", p.window},       {"scale", p.scale},           {"dtype", dtype_name(p.dtype)}};
}

// q, k and v of p into req under their names plus suffix ("" or ".3").
void add_inputs(Frame& req, const AttentionProblem& p, const std::string& suffix) {
    req.tensors["q" + suffix] = {{p.total_q(), p.n_q_heads, p.head_dim}, p.q};
    req.tensors["k" + suffix] = {{p.total_kv(), p.n_kv_heads, p.head_dim}, p.k};
    req.tensors["v" + suffix] = {{p.total_kv(), p.n_kv_heads, p.head_dim}, p.v};
}

#ifdef ATTNCHECK_HAVE_CUDA
// A run_batch over CUDA IPC: the runs' q, k, v and their outputs o, lse laid
// out in the shared buffer (each at a 256-byte boundary), the outputs
// poisoned with NaN and each followed by a guard band that the adapter must
// leave as it is. The message names every tensor's offset and shape.
class IpcStaging {
public:
    explicit IpcStaging(IpcBuffer& buf) : buf_(buf) {}
    void add(const AttentionProblem& p) {
        const size_t k = runs_.size();
        const std::vector<long long> qs = {p.total_q(), p.n_q_heads, p.head_dim},
                                     ks = {p.total_kv(), p.n_kv_heads, p.head_dim}, ls = {p.total_q(), p.n_q_heads};
        Run r{&p,
              place(fmt::format("q.{}", k), qs, p.q.size(), 0),
              place(fmt::format("k.{}", k), ks, p.k.size(), 0),
              place(fmt::format("v.{}", k), ks, p.v.size(), 0),
              place(fmt::format("o.{}", k), qs, p.q.size(), kGuard),
              place(fmt::format("lse.{}", k), ls, static_cast<size_t>(p.total_q()) * p.n_q_heads, kGuard)};
        runs_.push_back(r);
    }
    // Copies the inputs in, poisons the outputs, sets the guards; the
    // message's "ipc" metadata.
    json stage() {
        buf_.reserve(end_);
        for (const Run& r : runs_) {
            buf_.upload(r.q, r.p->q.data(), r.p->q.size() * 4);
            buf_.upload(r.k, r.p->k.data(), r.p->k.size() * 4);
            buf_.upload(r.v, r.p->v.data(), r.p->v.size() * 4);
            for (const auto& [off, n] : {std::pair{r.o, r.p->q.size()},
                                         std::pair{r.lse, static_cast<size_t>(r.p->total_q()) * r.p->n_q_heads}}) {
                buf_.fill(off, 0xFF, n * 4); // all-ones floats are NaN
                buf_.fill(off + n * 4, kGuardByte, kGuard);
            }
        }
        buf_.sync();
        return {{"handle", buf_.handle_hex()}, {"bytes", buf_.size()}, {"tensors", tensors_}};
    }
    // Run k's outputs, their guards checked.
    Observation read(size_t k, const std::string& who) const {
        const Run& r = runs_.at(k);
        Observation obs;
        obs.o.resize(r.p->q.size());
        obs.lse.resize(static_cast<size_t>(r.p->total_q()) * r.p->n_q_heads);
        for (const auto& [off, dst, name] : {std::tuple{r.o, &obs.o, "o"}, std::tuple{r.lse, &obs.lse, "lse"}}) {
            buf_.download(off, dst->data(), dst->size() * 4);
            std::vector<unsigned char> guard(kGuard);
            buf_.download(off + dst->size() * 4, guard.data(), kGuard);
            for (size_t i = 0; i < kGuard; ++i)
                if (guard[i] != kGuardByte)
                    throw std::runtime_error(fmt::format(
                        "{}: wrote past {}.{} in the CUDA IPC buffer (guard byte {} changed)", who, name, k, i));
        }
        return obs;
    }

private:
    static constexpr size_t kAlign = 256, kGuard = 256;
    static constexpr unsigned char kGuardByte = 0xA5;
    struct Run {
        const AttentionProblem* p;
        size_t q, k, v, o, lse; // byte offsets
    };
    size_t place(const std::string& name, const std::vector<long long>& shape, size_t floats, size_t guard) {
        const size_t off = end_;
        tensors_[name] = {{"offset", off}, {"shape", shape}};
        end_ = (off + floats * 4 + guard + kAlign - 1) / kAlign * kAlign;
        return off;
    }
    IpcBuffer& buf_;
    std::vector<Run> runs_;
    json tensors_ = json::object();
    size_t end_ = 0;
};
#endif

} // namespace

// The answer's o and lse (names plus suffix) for p, checked for size.
Observation ExternalTarget::observation(const AttentionProblem& p, Frame& rep, const std::string& suffix) const {
    const auto o = rep.tensors.find("o" + suffix), lse = rep.tensors.find("lse" + suffix);
    if (o == rep.tensors.end() || lse == rep.tensors.end())
        throw std::runtime_error(
            fmt::format("{}: answered '{}' without tensors o{} and lse{}", caps_.name, rep.type(), suffix, suffix));
    Observation obs;
    obs.o = std::move(o->second.data);
    obs.lse = std::move(lse->second.data);
    const size_t rows = static_cast<size_t>(p.total_q()) * p.n_q_heads;
    if (obs.o.size() != p.q.size() || obs.lse.size() != rows)
        throw std::runtime_error(fmt::format("{}: o{} has {} values and lse{} {}, expected {} and {}", caps_.name,
                                             suffix, obs.o.size(), suffix, obs.lse.size(), p.q.size(), rows));
    return obs;
}

Observation ExternalTarget::run(const AttentionProblem& p, const std::optional<ProbeRequest>&) {
    const std::string why = unsupported(shape_of(p));
    if (!why.empty()) throw UnsupportedCase(why);
    Frame req;
    req.meta = {{"type", "run"}, {"problem", problem_json(p).dump()}};
    add_inputs(req, p, "");
    Frame rep = adapter_.exchange(req);
    if (rep.type() == "unsupported") throw UnsupportedCase(caps_.name + ": " + rep.meta["reason"]);
    if (rep.type() == "error") throw std::runtime_error(caps_.name + " reported an error: " + rep.meta["message"]);
    if (rep.type() != "result") throw std::runtime_error(caps_.name + ": answered '" + rep.type() + "' to run");
    return observation(p, rep, "");
}

// One run_batch message: problems as a JSON list, inputs q.i k.i v.i; the
// answer, results, lists a status per run and carries o.i and lse.i for
// those with a result. Runs the adapter cannot take are refused here,
// without a trip.
std::vector<RunAnswer> ExternalTarget::run_batch(const std::vector<RunRequest>& runs) {
    std::vector<RunAnswer> out(runs.size());
    std::vector<size_t> sent;
    json problems = json::array();
    for (size_t i = 0; i < runs.size(); ++i) {
        const AttentionProblem& p = *runs[i].problem;
        if (std::string why = unsupported(shape_of(p)); !why.empty()) {
            out[i].unsupported = std::move(why);
            continue;
        }
        problems.push_back(problem_json(p));
        sent.push_back(i);
    }
    if (sent.empty()) return out;
    if (sent.size() == 1) { // one run goes as a plain run message
        out[sent[0]] = std::move(Target::run_batch({runs[sent[0]]})[0]);
        return out;
    }
    auto fail_all = [&](const std::string& why) {
        for (size_t i : sent) out[i].error = why;
        return out;
    };
    Frame req, rep;
    req.meta = {{"type", "run_batch"}, {"problems", problems.dump()}};
#ifdef ATTNCHECK_HAVE_CUDA
    std::optional<IpcStaging> ipc;
#endif
    try {
#ifdef ATTNCHECK_HAVE_CUDA
        if (ipc_) {
            ipc.emplace(*ipc_);
            for (size_t i : sent) ipc->add(*runs[i].problem);
            req.meta["ipc"] = ipc->stage().dump();
        }
#endif
        if (!req.meta.count("ipc"))
            for (size_t k = 0; k < sent.size(); ++k) add_inputs(req, *runs[sent[k]].problem, fmt::format(".{}", k));
        rep = adapter_.exchange(req);
    } catch (const std::exception& e) {
        return fail_all(e.what());
    }
    if (rep.type() == "error") return fail_all(caps_.name + " reported an error: " + rep.meta["message"]);
    json answers;
    try {
        answers = json::parse(rep.meta["answers"]);
    } catch (const json::exception&) {}
    if (rep.type() != "results" || !answers.is_array() || answers.size() != sent.size())
        return fail_all(fmt::format("{}: answered '{}' to run_batch, not results with {} answers", caps_.name,
                                    rep.type(), sent.size()));
    for (size_t k = 0; k < sent.size(); ++k) {
        RunAnswer& a = out[sent[k]];
        const json& s = answers[k];
        const std::string status = s.is_object() ? s.value("status", std::string()) : std::string();
        try {
            if (status == "result") {
#ifdef ATTNCHECK_HAVE_CUDA
                if (ipc) {
                    a.obs = ipc->read(k, caps_.name);
                    continue;
                }
#endif
                a.obs = observation(*runs[sent[k]].problem, rep, fmt::format(".{}", k));
            } else if (status == "unsupported")
                a.unsupported = caps_.name + ": " + s.value("reason", std::string("(no reason)"));
            else if (status == "error")
                a.error = caps_.name + " reported an error: " + s.value("message", std::string("(no message)"));
            else
                a.error = fmt::format("{}: answer {} has status '{}'", caps_.name, k, status);
        } catch (const std::exception& e) {
            a.error = e.what();
        }
    }
    return out;
}

} // namespace attncheck
