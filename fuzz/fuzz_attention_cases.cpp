// libFuzzer target, structure-aware: every gate on one CPU attention target
// for a case that libFuzzer evolves as a Case, not as bytes.
//
// Input: the target's family name, a newline, the case as JSON. The custom
// mutator (LLVMFuzzerCustomMutator) parses it and applies one to three
// mutations of properties/campaign/case_mutator.hpp (tile and split edges,
// q past kv, empty and ragged sequences, GQA ratios, magnitudes to the
// dtype's limits, outliers, sinks, specials, masks, windows), now and then
// moving the case to another target; every mutant is valid and supported.
// Bytes that are not such an input are first turned into a case by the
// distribution's builder, reading its choices from them. The cross-over
// takes the shape of one case and the data of the other.
//
// Feedback toward failure: besides code coverage, each run sets extra
// coverage counters (libFuzzer's __libfuzzer_extra_counters section) for
// every gate's outcome (pass, skip, fail) and for the log2 bucket of the
// largest error / bound it compared (GateVerdict::ratio), so an input that
// brings a gate closer to its bound is new coverage: libFuzzer keeps it
// and mutates it further.
//
// Failures and mutant builds (ATTNCHECK_FUZZ_MUTANT): attention_fuzz_common.hpp.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "fuzz/attention_fuzz_common.hpp"
#include "properties/campaign/case_mutator.hpp"

using namespace attncheck;
using namespace attncheck::fuzzing;

namespace {

// Keeps each input to a few milliseconds on the CPU twins.
constexpr long long kMaxWork = 60000;

// A gate's counters: its three outcomes, then its error / bound buckets
// (ratio_bucket, properties/gates/gate.hpp).
constexpr int kCountersPerGate = 3 + kRatioBuckets;
constexpr int kMaxGates = 32;

__attribute__((used, section("__libfuzzer_extra_counters"))) std::uint8_t g_feedback[kMaxGates * kCountersPerGate];

struct Input {
    std::size_t entry = 0;
    Case c;
};

MutationContext context_of(const FuzzEntry& e) {
    MutationContext ctx;
    ctx.caps = e.caps;
    ctx.limits.max_work = kMaxWork;
    const Target* t = e.target.get();
    ctx.supported = [t](const Case& c) { return t->unsupported(c).empty(); };
    return ctx;
}

std::optional<Input> parse_input(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::size_t nl = text.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    const std::string name = text.substr(0, nl);
    auto& es = fuzz_entries();
    const auto it = std::find_if(es.begin(), es.end(), [&](const FuzzEntry& e) { return e.target->name() == name; });
    if (it == es.end()) return std::nullopt;
    try {
        return Input{static_cast<std::size_t>(it - es.begin()), parse_case(text.substr(nl + 1))};
    } catch (const std::exception&) { // CaseError, or JSON the parser refuses
        return std::nullopt;
    }
}

// The input's bytes, or 0 when they do not fit in max_size.
std::size_t write_input(const Input& in, std::uint8_t* out, std::size_t max_size) {
    const std::string text = fuzz_entries()[in.entry].target->name() + "\n" + case_to_json(in.c, -1);
    if (text.size() > max_size) return 0;
    std::memcpy(out, text.data(), text.size());
    return text.size();
}

// A case for bytes that are not an input: the first byte picks the target.
Input case_from_bytes(const std::uint8_t* data, std::size_t size) {
    auto& es = fuzz_entries();
    Input in;
    in.entry = size ? data[0] % es.size() : 0;
    BytesChooser ch(size ? data + 1 : data, size ? size - 1 : 0);
    GenLimits lim;
    lim.max_work = kMaxWork;
    in.c = build_case(es[in.entry].caps, lim, ch);
    return in;
}

void record_feedback(const CaseCheck& chk) {
    const auto& gates = all_gates();
    for (const GateOutcome& o : chk.outcomes) {
        const auto g = static_cast<int>(o.gate - gates.data());
        if (g < 0 || g >= kMaxGates) continue;
        std::uint8_t* slot = g_feedback + g * kCountersPerGate;
        ++slot[static_cast<int>(o.verdict.status)];
        if (const int b = ratio_bucket(o.verdict.ratio); b >= 0) ++slot[3 + b];
    }
}

// ATTNCHECK_FUZZ_VERBOSE=1: say what became of each input (seed files
// must be checked, not skipped).
void say(const char* what, const std::string& why = {}) {
    static const bool verbose = std::getenv("ATTNCHECK_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "fuzz_attention_cases: %s%s%s\n", what, why.empty() ? "" : ": ", why.c_str());
}

} // namespace

// The targets are chosen here, before any input: a setting they cannot run
// with stops the fuzzer (exit 2) instead of counting as a crash of an input.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz_entries();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::optional<Input> in = parse_input(data, size);
    if (!in) return say("skipped", "not a family name, a newline and a valid case"), 0;
    FuzzEntry& e = fuzz_entries()[in->entry];
    if (const std::string why = e.target->unsupported(in->c); !why.empty()) return say("skipped", why), 0;
    if (case_work(in->c) > kMaxWork) return say("skipped", "work above the fuzzer's cap"), 0;
    record_feedback(fuzz_check(e, in->c));
    say("checked", e.target->full_name());
    return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
    Rng rng(seed);
    Input in = parse_input(data, size).value_or(case_from_bytes(data, size));
    auto& es = fuzz_entries();
    if (rng.coin(0.05)) { // the same case on another target, if it fits there
        Input moved = in;
        moved.entry = rng.below(es.size());
        if (fit_case(moved.c, context_of(es[moved.entry]))) in = moved;
    }
    const MutationContext ctx = context_of(es[in.entry]);
    const int steps = static_cast<int>(rng.range(1, 3));
    for (int i = 0; i < steps; ++i) in.c = mutate_case(in.c, ctx, rng);
    const std::size_t n = write_input(in, data, max_size);
    return n ? n : std::min(size, max_size);
}

extern "C" std::size_t LLVMFuzzerCustomCrossOver(const std::uint8_t* data1, std::size_t size1,
                                                 const std::uint8_t* data2, std::size_t size2, std::uint8_t* out,
                                                 std::size_t max_out_size, unsigned int seed) {
    const std::optional<Input> a = parse_input(data1, size1), b = parse_input(data2, size2);
    if (!a || !b) return 0;
    Rng rng(seed);
    Input x = *a;
    x.c = cross_cases(a->c, b->c, context_of(fuzz_entries()[a->entry]), rng);
    return write_input(x, out, max_out_size);
}
