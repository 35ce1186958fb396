// libFuzzer target, structure-aware: a model case (model/model_case.hpp) run
// on the CPU engine and judged by the model's gates (stages, decode_prefill,
// families; model/model_case_check.hpp).
//
// The custom mutator (properties/campaign/model_case_mutator.hpp) moves the
// configuration, the weights and the session schedule one step at a time;
// every mutant is a valid, small case. Bytes that are not a model case start
// from the smallest one. The cross-over takes the configuration of one case
// and the schedule of the other.
//
// Feedback toward failure: extra coverage counters per stage for the log2
// bucket of its largest error / bound over the case (ModelVerdict::
// stage_worst), so a case that brings any stage nearer its bound is kept.
//
// A failed gate shrinks the case (properties/campaign/model_case_shrinker.hpp,
// while the same gate fails; the case as found when shrinking throws), prints
// the verdict, writes the case to
// ATTNCHECK_FUZZ_OUT (default fuzz-counterexamples/; replay: `attncheck repro FILE`) and aborts.
// ATTNCHECK_FUZZ_MODEL_MUTANT=<name> fuzzes a model mutant instead; the
// production engine must never abort.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "fuzz/fuzz_env.hpp"
#include "model/model_case_check.hpp"
#include "properties/campaign/model_campaign.hpp"
#include "properties/campaign/model_case_mutator.hpp"
#include "properties/campaign/model_case_shrinker.hpp"
#include "properties/gates/gate.hpp"

using namespace attncheck;

namespace {

__attribute__((used, section("__libfuzzer_extra_counters"))) std::uint8_t g_stage_feedback[kStages * kRatioBuckets];

ModelMutant fuzz_model_mutant() {
    return fuzz::mutant_from_env("ATTNCHECK_FUZZ_MODEL_MUTANT", ModelMutant::none,
                                 [](const std::string& s) { return parse_model_mutant(s); });
}

std::optional<ModelCase> parse(const std::uint8_t* data, std::size_t size) {
    try {
        return model_case_from_json(std::string(reinterpret_cast<const char*>(data), size));
    } catch (const std::exception&) { // ModelCaseError, ConfigError
        return std::nullopt;
    }
}

std::size_t write(const ModelCase& c, std::uint8_t* out, std::size_t max_size) {
    const std::string text = model_case_to_json(c);
    if (text.size() > max_size) return 0;
    std::memcpy(out, text.data(), text.size());
    return text.size();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const ModelMutant mutant = fuzz_model_mutant();
    std::optional<ModelCase> c = parse(data, size);
    if (!c || !fit_model_case(*c)) return 0; // not a case, or too large for the fuzzer
    ModelVerdict v;
    try {
        v = check_model_case(*c, Backend::cpu, mutant);
    } catch (const ModelError&) { // a configuration the engine refuses: not a finding
        return 0;
    }
    for (int s = 0; s < kStages; ++s)
        if (const int b = ratio_bucket(v.stage_worst[static_cast<std::size_t>(s)]); b >= 0)
            ++g_stage_feedback[s * kRatioBuckets + b];
    if (!v.ok) {
        ModelRunSpec spec;
        spec.mutant = mutant;
        spec.out_dir = fuzz::out_dir();
        std::fprintf(stderr, "model gate %s FAILED on %s; shrinking\n", v.gate.c_str(), model_case_summary(*c).c_str());
        ModelFailure f{*c, v, 0, {}};
        // A shrinker that throws must not lose the finding: the case is
        // saved as found.
        try {
            f = shrink_model_failure(*c, Backend::cpu, mutant, v.gate);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "shrinking failed (%s); the case is saved as found\n", e.what());
        }
        const std::string path = save_model_counterexample(f, spec);
        const ModelVerdict& fv = f.verdict;
        std::fprintf(stderr,
                     "model gate %s FAILED (layer %d, stage %s): %s\nshrunk in %d steps to %s\n"
                     "counterexample: %s\nreplay: attncheck repro %s\n",
                     fv.gate.c_str(), fv.layer, fv.stage.c_str(), fv.summary.c_str(), f.shrink_steps,
                     model_case_summary(f.shrunk).c_str(), path.c_str(), path.c_str());
        std::abort();
    }
    return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
    Rng rng(seed);
    std::optional<ModelCase> c = parse(data, size);
    if (!c || !fit_model_case(*c)) c = smallest_model_case();
    const std::size_t n = write(mutate_model_case(*c, rng), data, max_size);
    return n ? n : std::min(size, max_size);
}

extern "C" std::size_t LLVMFuzzerCustomCrossOver(const std::uint8_t* data1, std::size_t size1,
                                                 const std::uint8_t* data2, std::size_t size2, std::uint8_t* out,
                                                 std::size_t max_out_size, unsigned int) {
    const std::optional<ModelCase> a = parse(data1, size1), b = parse(data2, size2);
    if (!a || !b) return 0;
    return write(cross_model_cases(*a, *b), out, max_out_size);
}
