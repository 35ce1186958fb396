// A Target runs a Case: an engine kernel variant on the CPU or on CUDA (or,
// later, the whole model or an external implementation). It declares what it
// supports and rejects anything else with a reason -- it never computes an
// unsupported case wrongly -- and it declares the precision profile the
// error model judges it by.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/case.hpp"
#include "engine/mutant.hpp"
#include "engine/observation.hpp"
#include "engine/problem.hpp"
#include "oracle/error_model.hpp"

namespace attncheck {

enum class Backend { cpu, cuda };
inline const char* backend_name(Backend b) { return b == Backend::cpu ? "cpu" : "cuda"; }

// Thrown by run() for a case the target does not support (callers should ask
// unsupported() first; this is the safety net).
struct UnsupportedCase : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Target {
public:
    virtual ~Target() = default;
    virtual std::string name() const = 0;  // e.g. "decode_gqa"
    virtual Backend backend() const = 0;
    virtual Mutant mutant() const = 0;
    virtual std::string description() const = 0;
    // Empty when the case is supported; otherwise the reason it is not.
    virtual std::string unsupported(const Case& c) const = 0;
    virtual PrecisionProfile profile(const Case& c) const = 0;
    virtual Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe = std::nullopt) = 0;
    std::string full_name() const;  // "cuda/decode_gqa" or "cpu/flash_prefill+no_row_max"
};

// Every target of a backend, built with the given mutant. A CUDA mutant is
// instantiated only for the dtypes and head dims its tests need; the
// target's unsupported() says so for the rest.
std::vector<std::unique_ptr<Target>> make_targets(Backend b, Mutant m = Mutant::none);
std::unique_ptr<Target> make_target(const std::string& name, Backend b, Mutant m = Mutant::none);

}  // namespace attncheck
