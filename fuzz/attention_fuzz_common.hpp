// What the attention fuzz targets share: the CPU targets they check (a
// mutant build with ATTNCHECK_FUZZ_MUTANT=<name>, to see how fast a campaign
// finds a known bug; the production build must never abort), choices read
// from raw bytes, and the check of one case, which on a gate failure prints
// the report, writes the case to fuzz-counterexamples/ (replay: `attncheck
// repro FILE`) and aborts, so libFuzzer keeps the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz/fuzz_env.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/counterexample.hpp"

namespace attncheck::fuzzing {

// Choices from the input bytes, little-endian, as many as the range needs;
// an exhausted input reads zeros (the simplest alternative of every choice).
class BytesChooser final : public Chooser {
public:
    BytesChooser(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    long long range(long long lo, long long hi) override {
        const unsigned long long span = static_cast<unsigned long long>(hi - lo);
        if (span <= 1) return lo;
        unsigned long long x = 0;
        for (unsigned long long seen = 1; seen < span; seen <<= 8) x = (x << 8) | next();
        return lo + static_cast<long long>(x % span);
    }

private:
    std::uint8_t next() { return n_ ? (--n_, *d_++) : 0; }
    const std::uint8_t* d_;
    std::size_t n_;
};

inline Mutant fuzz_mutant() {
    return fuzz::mutant_from_env("ATTNCHECK_FUZZ_MUTANT", Mutant::none,
                                 [](const std::string& s) { return parse_mutant(s); });
}

struct FuzzEntry {
    std::unique_ptr<Target> target;
    Capabilities caps;
};

// The CPU targets that run at least one dtype, in family order.
inline std::vector<FuzzEntry>& fuzz_entries() {
    static std::vector<FuzzEntry> v = [] {
        std::vector<FuzzEntry> out;
        for (auto& t : make_targets(Backend::cpu, fuzz_mutant())) {
            Capabilities caps = probe_capabilities(*t);
            if (!caps.empty()) out.push_back({std::move(t), std::move(caps)});
        }
        return out;
    }();
    return v;
}

// Every gate on the case (stopping at the first failure, which aborts).
inline CaseCheck fuzz_check(FuzzEntry& e, const Case& c) {
    CaseCheck chk = check_case(*e.target, c, gate_pointers({}));
    if (const GateOutcome* f = chk.failure()) {
        const Counterexample ce = counterexample_of(*e.target, c, *f);
        const std::string path = save_counterexample(ce, "fuzz-counterexamples");
        std::fprintf(stderr, "%s\ncounterexample: %s\nreplay: attncheck repro %s\n", ce.report.c_str(), path.c_str(),
                     path.c_str());
        std::abort();
    }
    return chk;
}

} // namespace attncheck::fuzzing
