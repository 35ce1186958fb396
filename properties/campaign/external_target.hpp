// A Target served by an external adapter process (`attncheck run --external
// "CMD"`, docs/adapter-protocol.md): any language, one process per worker,
// one message per run over its stdin and stdout, or one per batch of runs
// where the adapter takes them (max_batch).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/targets/target.hpp"
#include "properties/campaign/adapter_process.hpp"

namespace attncheck {

class IpcBuffer; // engine/cuda/ipc_buffer.hpp

struct AdapterCapabilities {
    std::string name;
    std::vector<DType> dtypes;
    std::vector<int> head_dims; // empty: any
    bool causal = false, window = false, gqa = false, batch_invariant = false;
    int max_kv_len = 0;                                  // 0: no limit
    int max_batch = 1;                                   // runs one run_batch message may carry
    bool cuda_ipc = false;                               // it can map a CUDA IPC buffer (run_batch)
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

    std::string name() const override { return caps_.name; }
    Backend backend() const override { return Backend::cpu; } // the host talks to it
    Mutant mutant() const override { return Mutant::none; }
    std::string description() const override { return "external adapter: " + adapter_.command(); }
    std::string unsupported(const Case& c) const override;
    PrecisionProfile profile(const Case& c) const override;
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override;
    bool promises_batch_invariance() const override { return caps_.batch_invariant; }
    int batch_size() const override { return caps_.max_batch; }
    // Whether run_batch hands tensors over through CUDA IPC (the adapter
    // declared cuda_ipc and this process sees a GPU) rather than the pipes.
    bool uses_cuda_ipc() const { return ipc_ != nullptr; }
    std::vector<RunAnswer> run_batch(const std::vector<RunRequest>& runs) override;

private:
    Observation observation(const AttentionProblem& p, Frame& rep, const std::string& suffix) const;
    AdapterProcess adapter_;
    AdapterCapabilities caps_;
    std::shared_ptr<IpcBuffer> ipc_; // CUDA builds only (shared_ptr: no IpcBuffer destructor needed elsewhere)
};

} // namespace attncheck
