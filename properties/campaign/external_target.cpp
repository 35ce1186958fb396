#include "properties/campaign/external_target.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "properties/campaign/adapter_frame.hpp"
#include "properties/campaign/child_process.hpp"

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

ExternalTarget::ExternalTarget(std::string command) : command_(std::move(command)) {
    // A dead adapter must show as an error on write, not kill attncheck.
    signal(SIGPIPE, SIG_IGN);
    try {
        const PipedChild c = spawn_piped({"/bin/sh", "-c", command_});
        pid_ = c.pid;
        to_ = c.in;
        from_ = c.out;
    } catch (const std::exception& e) {
        throw std::invalid_argument(fmt::format("--external '{}': {}", command_, e.what()));
    }
    try {
        Frame hello;
        hello.meta = {{"type", "hello"}, {"protocol", "1"}};
        send(encode_frame(hello));
        const Frame caps = decode_frame([this](char* b, std::size_t n) { read_exact(b, n); });
        if (caps.type() != "capabilities" || !caps.meta.count("capabilities"))
            throw std::runtime_error("answered '" + caps.type() + "' to hello, not capabilities");
        caps_ = parse_capabilities(caps.meta.at("capabilities"));
    } catch (const std::exception& e) {
        throw std::invalid_argument(fmt::format("--external '{}': {}", command_, e.what()));
    }
}

ExternalTarget::~ExternalTarget() {
    try {
        Frame bye;
        bye.meta = {{"type", "bye"}};
        send(encode_frame(bye));
    } catch (const std::exception&) {
        // already gone
    }
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
}

void ExternalTarget::send(const std::string& bytes) { write_all(to_, bytes, "the adapter"); }

void ExternalTarget::read_exact(char* buf, std::size_t n) { attncheck::read_exact(from_, buf, n, "the adapter"); }

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

Observation ExternalTarget::run(const AttentionProblem& p, const std::optional<ProbeRequest>&) {
    const std::string why = unsupported(shape_of(p));
    if (!why.empty()) throw UnsupportedCase(why);
    Frame req;
    const json problem = {{"n_q_heads", p.n_q_heads}, {"n_kv_heads", p.n_kv_heads}, {"head_dim", p.head_dim},
                          {"q_lens", p.q_lens},       {"kv_lens", p.kv_lens},       {"causal", p.causal},
                          {"window", p.window},       {"scale", p.scale},           {"dtype", dtype_name(p.dtype)}};
    req.meta = {{"type", "run"}, {"problem", problem.dump()}};
    req.tensors["q"] = {{p.total_q(), p.n_q_heads, p.head_dim}, p.q};
    req.tensors["k"] = {{p.total_kv(), p.n_kv_heads, p.head_dim}, p.k};
    req.tensors["v"] = {{p.total_kv(), p.n_kv_heads, p.head_dim}, p.v};
    send(encode_frame(req));
    Frame rep = decode_frame([this](char* b, std::size_t n) { read_exact(b, n); });
    if (rep.type() == "unsupported") throw UnsupportedCase(caps_.name + ": " + rep.meta["reason"]);
    if (rep.type() == "error") throw std::runtime_error(caps_.name + " reported an error: " + rep.meta["message"]);
    if (rep.type() != "result" || !rep.tensors.count("o") || !rep.tensors.count("lse"))
        throw std::runtime_error(caps_.name + ": answered '" + rep.type() + "' without tensors o and lse");
    Observation obs;
    obs.o = std::move(rep.tensors["o"].data);
    obs.lse = std::move(rep.tensors["lse"].data);
    const size_t rows = static_cast<size_t>(p.total_q()) * p.n_q_heads;
    if (obs.o.size() != p.q.size() || obs.lse.size() != rows)
        throw std::runtime_error(fmt::format("{}: o has {} values and lse {}, expected {} and {}", caps_.name,
                                             obs.o.size(), obs.lse.size(), p.q.size(), rows));
    return obs;
}

} // namespace attncheck
