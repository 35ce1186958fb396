// A Target served by an external adapter process (`attncheck run --external
// "CMD"`, docs/adapter-protocol.md): any language, one process per worker,
// one message per run over its stdin and stdout.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"

namespace attncheck {

struct AdapterCapabilities {
    std::string name;
    std::vector<DType> dtypes;
    std::vector<int> head_dims; // empty: any
    bool causal = false, window = false, gqa = false, batch_invariant = false;
    int max_kv_len = 0;                                  // 0: no limit
    PrecisionProfile profile;                            // "profile": every dtype
    std::map<DType, PrecisionProfile> profiles_by_dtype; // "profiles": where a dtype rounds differently
};

// Parses the adapter's capabilities JSON; throws std::invalid_argument
// naming the field.
AdapterCapabilities parse_capabilities(const std::string& json_text);

class ExternalTarget final : public Target {
public:
    // Starts the adapter and reads its capabilities; throws
    // std::invalid_argument when it does not answer as the protocol says.
    explicit ExternalTarget(std::string command);
    ~ExternalTarget() override;
    ExternalTarget(const ExternalTarget&) = delete;
    ExternalTarget& operator=(const ExternalTarget&) = delete;

    std::string name() const override { return caps_.name; }
    Backend backend() const override { return Backend::cpu; } // the host talks to it
    Mutant mutant() const override { return Mutant::none; }
    std::string description() const override { return "external adapter: " + command_; }
    std::string unsupported(const Case& c) const override;
    PrecisionProfile profile(const Case& c) const override;
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override;
    bool promises_batch_invariance() const override { return caps_.batch_invariant; }

private:
    void send(const std::string& bytes);
    void read_exact(char* buf, std::size_t n);
    std::string command_;
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
    AdapterCapabilities caps_;
};

} // namespace attncheck
