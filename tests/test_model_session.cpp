// A stateful RapidCheck test of a model session: random sequences of prefill
// chunks (any length, against whatever the slot has cached), batched decode
// steps over several slots, and resets, on the engine under test. After
// every command the call is checked stage by stage against the oracle
// recomputing each touched sequence from scratch (so a cache that drifted
// from the tokens -- wrong slot, wrong position, a reset that kept stale
// entries -- shows up as a divergence at kv_cache or attn_out).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <sstream>

#include "tests/model_test_util.hpp"

using namespace attncheck;
using namespace attncheck::model_test;

namespace {

constexpr int kSlots = 3;
constexpr int kMaxLen = 20;   // tokens per slot: keeps each oracle recomputation cheap
constexpr int kMaxSteps = 10; // commands per sequence: keeps the whole property under a few seconds
constexpr int kVocab = 97;    // tiny_config's vocabulary (checked in make_weights)

struct SessionModel {
    std::vector<int> len = std::vector<int>(kSlots, 0);
    int steps = 0;
};

struct Sut {
    Session s;
    explicit Sut(const ModelWeights& w, ModelMutant m = ModelMutant::none) : s(w, kSlots, m) {}
};

using Cmd = rc::state::Command<SessionModel, Sut>;

void expect_ok(Sut& sut, const StepOutput& out, const std::string& what) {
    const DivergenceReport r = sut.s.check(out);
    if (!r.ok) RC_FAIL(what + ": " + r.summary()); // names the layer and stage
}

struct Prefill : Cmd {
    int slot = *rc::gen::inRange(0, kSlots);
    int n = *rc::gen::inRange(2, 7);
    bool standard = *rc::gen::arbitrary<bool>();
    std::vector<int> toks = *rc::gen::container<std::vector<int>>(static_cast<size_t>(n), rc::gen::inRange(0, kVocab));
    void checkPreconditions(const SessionModel& m) const override {
        RC_PRE(m.steps < kMaxSteps && m.len[static_cast<size_t>(slot)] + n <= kMaxLen);
    }
    void apply(SessionModel& m) const override {
        m.len[static_cast<size_t>(slot)] += n;
        ++m.steps;
    }
    void run(const SessionModel& m, Sut& sut) const override {
        RC_ASSERT(sut.s.engine->cache_len(slot) == m.len[static_cast<size_t>(slot)]);
        ForwardOptions o;
        o.attention = standard ? "standard_path" : "flash_prefill";
        expect_ok(sut, sut.s.run({{slot, toks}}, o), "prefill");
        RC_ASSERT(sut.s.engine->cache_len(slot) == m.len[static_cast<size_t>(slot)] + n);
    }
    void show(std::ostream& os) const override {
        os << "Prefill(slot " << slot << ", " << n << " tokens, " << (standard ? "standard_path" : "flash_prefill")
           << ")";
    }
};

struct Decode : Cmd {
    std::vector<int> toks = *rc::gen::container<std::vector<int>>(kSlots, rc::gen::inRange(0, kVocab));
    std::string family = *rc::gen::element<std::string>("decode", "decode_gqa", "decode_split");
    int splits = *rc::gen::inRange(1, 5);
    void checkPreconditions(const SessionModel& m) const override {
        RC_PRE(m.steps < kMaxSteps);
        bool any = false;
        for (int l : m.len) {
            RC_PRE(l + 1 <= kMaxLen);
            any = any || l > 0;
        }
        RC_PRE(any);
    }
    void apply(SessionModel& m) const override {
        for (int& l : m.len)
            if (l > 0) ++l;
        ++m.steps;
    }
    void run(const SessionModel& m, Sut& sut) const override {
        std::vector<SeqChunk> batch;
        for (int s = 0; s < kSlots; ++s)
            if (m.len[static_cast<size_t>(s)] > 0) batch.push_back({s, {toks[static_cast<size_t>(s)]}});
        ForwardOptions o;
        o.attention = family;
        o.num_splits = splits;
        expect_ok(sut, sut.s.run(batch, o), "decode");
    }
    void show(std::ostream& os) const override { os << "Decode(" << family << ", splits " << splits << ")"; }
};

struct Reset : Cmd {
    int slot = *rc::gen::inRange(0, kSlots);
    void checkPreconditions(const SessionModel& m) const override { RC_PRE(m.steps < kMaxSteps); }
    void apply(SessionModel& m) const override {
        m.len[static_cast<size_t>(slot)] = 0;
        ++m.steps;
    }
    void run(const SessionModel&, Sut& sut) const override {
        sut.s.reset(slot);
        RC_ASSERT(sut.s.engine->cache_len(slot) == 0);
    }
    void show(std::ostream& os) const override { os << "Reset(slot " << slot << ")"; }
};

ModelWeights make_weights(DType dt) {
    RandomWeightOptions o;
    o.seed = 31;
    ModelWeights w = random_weights(tiny_config(ModelArch::qwen2, dt), o);
    if (w.config.vocab != kVocab) throw std::logic_error("test_model_session: kVocab out of date");
    return w;
}

const ModelWeights& session_weights(DType dt) {
    static const ModelWeights f32 = make_weights(DType::f32);
    static const ModelWeights b16 = make_weights(DType::bf16);
    return dt == DType::f32 ? f32 : b16;
}

} // namespace

// Plain tests around rc::check so the GPU twin can skip without a device
// (RapidCheck properties cannot GTEST_SKIP).
TEST(ModelSession, EveryCallMatchesTheOracleFromScratchFp32) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    EXPECT_TRUE(rc::check("session fp32", [] {
        Sut sut(session_weights(DType::f32));
        rc::state::check(SessionModel{}, sut, rc::state::gen::execOneOfWithArgs<Prefill, Decode, Reset>());
    }));
}

TEST(ModelSession, EveryCallMatchesTheOracleFromScratchBf16) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    EXPECT_TRUE(rc::check("session bf16", [] {
        Sut sut(session_weights(DType::bf16));
        rc::state::check(SessionModel{}, sut, rc::state::gen::execOneOfWithArgs<Prefill, Decode, Reset>());
    }));
}

// The session property must be able to fail: with the cache written one
// slot early, RapidCheck finds a command sequence that diverges (and
// shrinks it: the report printed above is the minimal session).
TEST(ModelSession, PropertyFailsOnTheWrongCachePositionMutant) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    std::printf("(expected: the RapidCheck failure report below is this test's subject, a property that must fail)\n");
    EXPECT_FALSE(rc::check("session with kv_cache_wrong_position (expected to fail)", [] {
        Sut sut(session_weights(DType::f32), ModelMutant::kv_cache_wrong_position);
        rc::state::check(SessionModel{}, sut, rc::state::gen::execOneOfWithArgs<Prefill, Decode, Reset>());
    }));
}

// And directly, deterministically:
TEST(ModelSession, CatchesTheWrongCachePositionMutant) {
    ATTNCHECK_SKIP_WITHOUT_DEVICE();
    const ModelWeights& w = session_weights(DType::f32);
    Session s(w, 1, ModelMutant::kv_cache_wrong_position);
    DivergenceReport a = s.check(s.run({{0, {1, 2, 3}}}));
    ASSERT_TRUE(a.ok) << a.summary(); // an empty cache is appended correctly
    DivergenceReport b = s.check(s.run({{0, {4, 5}}}));
    ASSERT_FALSE(b.ok);
    EXPECT_EQ(b.first->stage, Stage::kv_cache) << b.summary();
}
