// The batch_invariance gate's contract (Target::promises_batch_invariance),
// on the CPU: a target whose results depend on a sequence's batch position
// by one last bit must fail the gate when it promises bitwise batch
// invariance, and must not fail it when it does not, its verdict then saying
// "not batch invariant" instead of passing the bitwise property. Without
// this, a gate that never failed on the bitwise half would go unnoticed: the
// engine's families are batch invariant on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "kernels/registry.hpp"
#include "properties/gates/gate.hpp"

using namespace attncheck;

namespace {

// A CPU family target whose O, for every sequence that does not start at
// token 0, has the last bit of each finite non-zero element flipped: within
// any error bound (one ulp), but not the same bits as the same sequence at
// batch position 0. Zeros stay zeros, so fully masked rows keep O = 0.
class LastBitByPosition final : public Target {
public:
    LastBitByPosition(std::unique_ptr<Target> inner, bool promises) : inner_(std::move(inner)), promises_(promises) {}
    std::string name() const override { return inner_->name() + "_last_bit_by_position"; }
    Backend backend() const override { return inner_->backend(); }
    Mutant mutant() const override { return inner_->mutant(); }
    std::string description() const override { return "flips O's last bit for sequences not at token 0"; }
    std::string unsupported(const Case& c) const override { return inner_->unsupported(c); }
    PrecisionProfile profile(const Case& c) const override { return inner_->profile(c); }
    Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
        Observation obs = inner_->run(p, probe);
        for (int b = 0; b < p.batch(); ++b) {
            if (p.q_start[b] == 0) continue;
            const long long first = p.o_index(b, 0, 0);
            const long long n = static_cast<long long>(p.q_lens[b]) * p.n_q_heads * p.head_dim;
            for (long long i = first; i < first + n; ++i) {
                float& x = obs.o[static_cast<size_t>(i)];
                if (!std::isfinite(x) || x == 0.0f) continue;
                std::uint32_t bits;
                std::memcpy(&bits, &x, sizeof bits);
                bits ^= 1u;
                std::memcpy(&x, &bits, sizeof bits);
            }
        }
        return obs;
    }
    bool promises_batch_invariance() const override { return promises_; }

private:
    std::unique_ptr<Target> inner_;
    bool promises_;
};

// One sequence: the gate runs it alone (the case) and as the batch {0, 0},
// whose copy at position 1 is the one the wrapper changes. (With more
// sequences the reversed batch puts both copies of sequence 0 after others,
// so both would be changed alike.) fp32, GQA, no mask: every row sees keys,
// so every row has non-zero O to flip.
Case one_sequence() {
    Case c;
    c.n_q_heads = 3;
    c.n_kv_heads = 1;
    c.head_dim = 64; // one every family runs
    c.q_lens = {5};
    c.kv_lens = {6};
    c.dtype = DType::f32;
    c.num_splits = 2; // decode_split merges two partials per row
    c.data.seed = 99;
    return c;
}

GateVerdict run_gate(Target& t, const Case& c) {
    const Gate* g = find_gate("batch_invariance");
    EXPECT_NE(g, nullptr);
    if (!g) return GateVerdict::skip("no gate");
    EXPECT_EQ(t.unsupported(c), "");
    GateContext ctx(t, c);
    return g->check(ctx);
}

class BatchInvarianceContract : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchInvarianceContract, PromiseKeptPasses) {
    auto t = make_target(GetParam(), Backend::cpu);
    ASSERT_TRUE(t);
    ASSERT_TRUE(t->promises_batch_invariance());
    const GateVerdict v = run_gate(*t, one_sequence());
    EXPECT_EQ(v.status, GateStatus::pass) << v.summary;
    EXPECT_NE(v.summary.find("bitwise equal"), std::string::npos) << v.summary;
}

TEST_P(BatchInvarianceContract, PromiseBrokenFails) {
    LastBitByPosition t(make_target(GetParam(), Backend::cpu), true);
    const GateVerdict v = run_gate(t, one_sequence());
    std::printf("%s\n", v.summary.c_str());
    EXPECT_EQ(v.status, GateStatus::fail) << v.summary;
    EXPECT_NE(v.summary.find("sequence 0 at batch positions"), std::string::npos) << v.summary;
    EXPECT_TRUE(v.row.has_value()) << "a failure names the row to diagnose";
}

TEST_P(BatchInvarianceContract, UnpromisedDifferenceIsReportedNotFailed) {
    LastBitByPosition t(make_target(GetParam(), Backend::cpu), false);
    const GateVerdict v = run_gate(t, one_sequence());
    std::printf("%s\n", v.summary.c_str());
    EXPECT_NE(v.status, GateStatus::fail) << v.summary;
    EXPECT_EQ(v.summary.rfind("not batch invariant", 0), 0u) << v.summary;
    EXPECT_NE(v.summary.find("differs"), std::string::npos) << "the summary says what differed: " << v.summary;
}

TEST_P(BatchInvarianceContract, UnpromisedAgreementIsNotAPassOfTheProperty) {
    // A target that happens to be invariant but does not promise it.
    class Unpromised final : public Target {
    public:
        explicit Unpromised(std::unique_ptr<Target> t) : t_(std::move(t)) {}
        std::string name() const override { return t_->name(); }
        Backend backend() const override { return t_->backend(); }
        Mutant mutant() const override { return t_->mutant(); }
        std::string description() const override { return t_->description(); }
        std::string unsupported(const Case& c) const override { return t_->unsupported(c); }
        PrecisionProfile profile(const Case& c) const override { return t_->profile(c); }
        Observation run(const AttentionProblem& p, const std::optional<ProbeRequest>& probe) override {
            return t_->run(p, probe);
        }

    private:
        std::unique_ptr<Target> t_;
    } t(make_target(GetParam(), Backend::cpu));
    ASSERT_FALSE(t.promises_batch_invariance()); // Target's default
    const GateVerdict v = run_gate(t, one_sequence());
    EXPECT_NE(v.status, GateStatus::fail) << v.summary;
    EXPECT_EQ(v.summary.rfind("not batch invariant", 0), 0u) << v.summary;
    EXPECT_NE(v.summary.find("not promised"), std::string::npos) << v.summary;
}

// Families of different structure: eager GEMMs, tiled online softmax,
// split-KV with a merge.
INSTANTIATE_TEST_SUITE_P(Cpu, BatchInvarianceContract,
                         ::testing::Values("standard_path", "flash_prefill", "decode_split"),
                         [](const auto& info) { return std::string(info.param); });

} // namespace
