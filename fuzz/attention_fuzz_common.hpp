// What the attention fuzz targets share: the targets they check, chosen by
// the environment (fuzz_env.hpp; attncheck campaign --fuzzer sets it):
//   ATTNCHECK_FUZZ_BACKEND  cpu (default) or cuda. The CUDA targets need a
//                           build with the CUDA backend (the fuzz-cuda
//                           preset: sanitizers on host code only) and a
//                           device; without them the fuzzer stops, exit 2;
//   ATTNCHECK_FUZZ_MUTANT   a mutant build, to see how fast a campaign finds
//                           a known bug (the production build must never
//                           abort);
//   ATTNCHECK_FUZZ_OUT      where failures and tallies go;
// choices read from raw bytes; and the check of one case, which on a gate
// failure shrinks it, prints the report, writes the counterexample to the
// out folder (replay: `attncheck repro FILE`) and aborts, so libFuzzer
// keeps the input. Each process also leaves its gate tallies in the out
// folder (fuzz_tallies.hpp) for the campaign's status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz/fuzz_env.hpp"
#include "fuzz/fuzz_tallies.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/case_shrinker.hpp"
#include "properties/campaign/counterexample.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#endif

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

inline Backend fuzz_backend() {
    const char* e = std::getenv("ATTNCHECK_FUZZ_BACKEND");
    const std::string b = e ? e : "cpu";
    if (b == "cpu") return Backend::cpu;
    if (b != "cuda") fuzz::stop("ATTNCHECK_FUZZ_BACKEND: '" + b + "' is neither cpu nor cuda");
#ifdef ATTNCHECK_HAVE_CUDA
    std::string why;
    if (!cuda_device_available(&why)) fuzz::stop("ATTNCHECK_FUZZ_BACKEND=cuda: " + why);
    return Backend::cuda;
#else
    fuzz::stop(
        "ATTNCHECK_FUZZ_BACKEND=cuda: this fuzzer was built without the CUDA backend (cmake --preset fuzz-cuda)");
#endif
}

struct FuzzEntry {
    std::unique_ptr<Target> target;
    Capabilities caps;
};

// The backend's targets that run at least one dtype, in family order.
inline std::vector<FuzzEntry>& fuzz_entries() {
    static std::vector<FuzzEntry> v = [] {
        std::vector<FuzzEntry> out;
        for (auto& t : make_targets(fuzz_backend(), fuzz_mutant())) {
            Capabilities caps = probe_capabilities(*t);
            if (!caps.empty()) out.push_back({std::move(t), std::move(caps)});
        }
        if (out.empty()) fuzz::stop("no target of this backend runs any dtype");
        return out;
    }();
    return v;
}

// Every gate on the case (stopping at the first failure, which aborts).
inline CaseCheck fuzz_check(FuzzEntry& e, const Case& c) {
    CaseCheck chk = check_case(*e.target, c, gate_pointers({}));
    fuzz::tallies().add(chk);
    if (const GateOutcome* f = chk.failure()) {
        fuzz::tallies().write();
        // Shrunk here, before the abort: the file a campaign keeps is the
        // minimal case (the greedy shrinker; the input libFuzzer saves is
        // the one it found). A shrink that goes wrong keeps the case as found.
        Counterexample ce;
        try {
            ce = shrink_counterexample(*e.target, c, f->gate->name);
        } catch (const std::exception& x) {
            std::fprintf(stderr, "shrinking failed (%s); keeping the case as found\n", x.what());
            ce = counterexample_of(*e.target, c, *f);
        }
        const std::string path = save_counterexample(ce, fuzz::out_dir());
        std::fprintf(stderr, "%s\ncounterexample: %s\nreplay: attncheck repro %s\n", ce.report.c_str(), path.c_str(),
                     path.c_str());
        std::abort();
    }
    return chk;
}

} // namespace attncheck::fuzzing
