// The target registry: one FamilyTarget per line of ATTNCHECK_FAMILIES.
#include "kernels/registry.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "kernels/families.hpp"

namespace attncheck {

namespace kernels {

std::string mutant_unsupported(const char* family, FamilyFeatures f, Mutant m, Backend b) {
    if (family_carries(f, m, b == Backend::cuda)) return {};
    if (static_cast<int>(m) < 0 || m >= Mutant::count_) return fmt::format("{}: unknown mutant", family);
    return fmt::format("{}: mutant {} does not apply here (it needs {}{})", family, mutant_name(m),
                       scope_name(mutant_scope(m)), b == Backend::cpu ? ", CUDA backend" : "");
}

} // namespace kernels

namespace {

using RunFn = Observation (*)(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&);

struct Family {
    const char* name;
    const char* description;
    std::string (*unsupported)(const Case&, Backend, Mutant);
    PrecisionProfile (*profile)(const Case&, Backend);
    RunFn cpu;
    RunFn cuda; // nullptr without the CUDA backend
    FamilyFeatures features;
};

#ifdef ATTNCHECK_HAVE_CUDA
#define ATTNCHECK_CUDA_FN(f) &kernels::f##_cuda
#else
#define ATTNCHECK_CUDA_FN(f) nullptr
#endif

const std::vector<Family>& families() {
    static const std::vector<Family> v = {
#define ATTNCHECK_FAMILY_ENTRY(f, online, split, tiles, paged, desc) \
    Family{#f,                                                       \
           desc,                                                     \
           &kernels::f##_unsupported,                                \
           &kernels::f##_profile,                                    \
           &kernels::f##_cpu,                                        \
           ATTNCHECK_CUDA_FN(f),                                     \
           kernels::features_of(kernels::Family::f)},
        ATTNCHECK_FAMILIES(ATTNCHECK_FAMILY_ENTRY)
#undef ATTNCHECK_FAMILY_ENTRY
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
        if (c.page_size > 0 && !f_.features.paged_kv)
            return fmt::format("{}: no paged KV cache (contiguous K and V only)", f_.name);
        return f_.unsupported(c, b_, m_);
    }
    PrecisionProfile profile(const Case& c) const override { return f_.profile(c, b_); }
    bool reads_paged_kv() const override { return f_.features.paged_kv; }
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
        RunFn fn = b_ == Backend::cpu ? f_.cpu : f_.cuda;
        if (!fn) throw UnsupportedCase(fmt::format("{}: CUDA backend not built", full_name()));
        return fn(p, m_, probe);
    }
    // Every embedded family promises it: no kernel choice, split or
    // reduction order depends on where a sequence sits in the batch.
    bool promises_batch_invariance() const override { return true; }
    bool records_probes() const override { return true; }

private:
    const Family& f_;
    Backend b_;
    Mutant m_;
};

} // namespace

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

std::vector<std::unique_ptr<Target>> make_targets_named(Backend b, Mutant m, const std::vector<std::string>& names) {
    if (names.empty()) return make_targets(b, m);
    std::vector<std::unique_ptr<Target>> out;
    for (const auto& n : names) {
        auto t = make_target(n, b, m);
        if (!t) throw std::invalid_argument(fmt::format("unknown target '{}' (attncheck list shows them)", n));
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<std::string> family_names() {
    std::vector<std::string> v;
    for (const Family& f : families()) v.push_back(f.name);
    return v;
}

} // namespace attncheck
