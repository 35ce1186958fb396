// Test helpers for checks over wrapped targets: a Target that forwards
// everything to a family (tests override what they change: batch size,
// waits), and the first n cases a seeded campaign would draw for a target.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "properties/campaign/campaign.hpp"
#include "properties/campaign/generators.hpp"

namespace attncheck {

class WrappedTarget : public Target {
public:
    explicit WrappedTarget(std::unique_ptr<Target> inner) : inner_(std::move(inner)) {}
    std::string name() const override { return inner_->name(); }
    Backend backend() const override { return inner_->backend(); }
    Mutant mutant() const override { return inner_->mutant(); }
    std::string description() const override { return "wrapped " + inner_->description(); }
    std::string unsupported(const Case& c) const override { return inner_->unsupported(c); }
    PrecisionProfile profile(const Case& c) const override { return inner_->profile(c); }
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
        return inner_->run(p, probe);
    }
    bool promises_batch_invariance() const override { return inner_->promises_batch_invariance(); }
    bool records_probes() const override { return inner_->records_probes(); }
    bool reads_paged_kv() const override { return inner_->reads_paged_kv(); }

private:
    std::unique_ptr<Target> inner_;
};

// The supported cases among the first draws of case_seed(seed, i).
inline std::vector<Case> seeded_cases(Target& t, int n, std::uint64_t seed) {
    const Capabilities caps = probe_capabilities(t);
    std::vector<Case> out;
    for (long long i = 0; static_cast<int>(out.size()) < n && i < 50LL * n; ++i) {
        SeededChooser ch(case_seed(seed, i));
        Case c = build_case(caps, GenLimits{}, ch);
        if (t.unsupported(c).empty()) out.push_back(std::move(c));
    }
    return out;
}

} // namespace attncheck
