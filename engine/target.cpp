// The target registry: one entry per kernel family, each with its CPU twin
// and (in CUDA builds) its CUDA version.
#include "engine/target.hpp"

#include <fmt/format.h>

#include "kernels/decode.hpp"
#include "kernels/decode_gqa.hpp"
#include "kernels/decode_split.hpp"
#include "kernels/flash_prefill.hpp"
#include "kernels/standard_path.hpp"

namespace attncheck {

namespace {

using RunFn = Observation (*)(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&);

struct Family {
    const char* name;
    const char* description;
    std::string (*unsupported)(const Case&, Backend, Mutant);
    PrecisionProfile (*profile)(const Case&, Backend);
    RunFn cpu;
    RunFn cuda;  // nullptr without the CUDA backend
};

#ifdef ATTNCHECK_HAVE_CUDA
#define CUDA_FN(f) &kernels::f##_cuda
#else
#define CUDA_FN(f) nullptr
#endif
#define FAMILY(f, desc) Family{#f, desc, &kernels::f##_unsupported, &kernels::f##_profile, &kernels::f##_cpu, CUDA_FN(f)}

const std::vector<Family>& families() {
    static const std::vector<Family> v = {
        FAMILY(decode, "decode: one query token per sequence against its KV cache, one block per (sequence, q head)"),
        FAMILY(decode_gqa, "GQA decode: one block per (sequence, kv head) serving its whole q-head group"),
        FAMILY(decode_split, "split-KV decode (flash-decoding): partial softmax per split, then an LSE merge"),
        FAMILY(flash_prefill, "flash prefill: tiled online softmax on tensor cores, causal bottom-right, chunked"),
        FAMILY(standard_path, "standard path: cuBLAS Q.K^T, a softmax kernel, cuBLAS P.V"),
    };
    return v;
}

class FamilyTarget final : public Target {
public:
    FamilyTarget(const Family& f, Backend b, Mutant m) : f_(f), b_(b), m_(m) {}
    std::string name() const override { return f_.name; }
    Backend backend() const override { return b_; }
    Mutant mutant() const override { return m_; }
    std::string description() const override { return f_.description; }
    std::string unsupported(const Case& c) const override {
        if (b_ == Backend::cuda && !f_.cuda) return "CUDA backend not built";
        return f_.unsupported(c, b_, m_);
    }
    PrecisionProfile profile(const Case& c) const override { return f_.profile(c, b_); }
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
        RunFn fn = b_ == Backend::cpu ? f_.cpu : f_.cuda;
        if (!fn) throw UnsupportedCase(fmt::format("{}: CUDA backend not built", full_name()));
        return fn(p, m_, probe);
    }

private:
    const Family& f_;
    Backend b_;
    Mutant m_;
};

}  // namespace

std::string Target::full_name() const {
    std::string s = fmt::format("{}/{}", backend_name(backend()), name());
    if (mutant() != Mutant::none) s += std::string("+") + mutant_name(mutant());
    return s;
}

std::vector<std::unique_ptr<Target>> make_targets(Backend b, Mutant m) {
    std::vector<std::unique_ptr<Target>> out;
    for (const Family& f : families()) out.push_back(std::make_unique<FamilyTarget>(f, b, m));
    return out;
}

std::unique_ptr<Target> make_target(const std::string& name, Backend b, Mutant m) {
    for (const Family& f : families())
        if (name == f.name) return std::make_unique<FamilyTarget>(f, b, m);
    return nullptr;
}

}  // namespace attncheck
