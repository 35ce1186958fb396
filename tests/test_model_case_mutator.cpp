// The model case mutator of fuzz/fuzz_model_step.cpp
// (properties/campaign/model_case_mutator.hpp): random walks from the
// smallest case stay valid and small, give every call a family that runs it,
// reach the configuration, weights and schedule, and the cases they reach
// hold on the production engine and expose a model mutant.
#include <gtest/gtest.h>

#include <set>

#include "kernels/flash_prefill/flash_prefill.hpp"
#include "model/model_case_check.hpp"
#include "properties/campaign/model_case_mutator.hpp"

using namespace attncheck;

namespace {

void expect_runnable(const ModelCase& c) {
    ASSERT_NO_THROW(validate(c));
    int tokens = 0;
    for (const ModelStep& s : c.schedule) {
        if (s.reset) continue;
        bool one = true;
        for (const SeqChunk& ch : s.batch) {
            tokens += static_cast<int>(ch.tokens.size());
            one = one && ch.tokens.size() == 1;
        }
        if (s.attention.rfind("decode", 0) == 0) {
            EXPECT_TRUE(one) << s.attention << " given a multi-token chunk";
        }
        if (s.attention == "flash_prefill") {
            EXPECT_TRUE(kernels::flash::head_dim_supported(c.config.head_dim));
        }
    }
    EXPECT_LE(tokens, 24);
}

} // namespace

TEST(ModelCaseMutator, WalksStayValidAndReachEveryPart) {
    Rng rng(11);
    ModelCase c = smallest_model_case();
    expect_runnable(c);
    std::set<std::string> reached;
    for (int i = 0; i < 600; ++i) {
        const ModelCase m = mutate_model_case(c, rng);
        expect_runnable(m);
        if (m.config.n_q_heads != c.config.n_q_heads) reached.insert("heads");
        if (m.config.head_dim != c.config.head_dim) reached.insert("head_dim");
        if (m.config.layers != c.config.layers) reached.insert("layers");
        if (m.config.dtype != c.config.dtype) reached.insert("dtype");
        if (!(m.config.rope_scaling == c.config.rope_scaling)) reached.insert("rope_scaling");
        if (m.weights.seed != c.weights.seed || m.weights.massive_channels != c.weights.massive_channels)
            reached.insert("weights");
        if (m.schedule.size() != c.schedule.size()) reached.insert("schedule length");
        for (const ModelStep& s : m.schedule) {
            if (s.reset) reached.insert("reset");
            if (s.batch.size() > 1) reached.insert("ragged");
            if (s.attention != "auto") reached.insert("family " + s.attention);
        }
        // Restart now and then, so the walk does not stall at the size cap.
        c = i % 40 == 39 ? smallest_model_case() : m;
    }
    for (const char* part : {"heads", "head_dim", "layers", "dtype", "rope_scaling", "weights", "schedule length",
                             "reset", "ragged", "family decode_split", "family standard_path"})
        EXPECT_TRUE(reached.count(part)) << "never reached: " << part;
    const ModelCase x = cross_model_cases(mutate_model_case(smallest_model_case(), rng), c);
    expect_runnable(x);
}

TEST(ModelCaseMutator, ReachedCasesHoldOnTheEngineAndExposeAMutant) {
    Rng rng(5);
    ModelCase c = smallest_model_case();
    int checked = 0, caught = 0;
    for (int i = 0; i < 24; ++i) {
        c = mutate_model_case(c, rng);
        try {
            const ModelVerdict v = check_model_case(c, Backend::cpu);
            EXPECT_TRUE(v.ok) << v.gate << ": " << v.summary << "\n" << model_case_to_json(c);
            double worst = 0;
            for (double r : v.stage_worst) worst = std::max(worst, r);
            EXPECT_GT(worst, 0) << "the stage feedback saw no ratio";
            ++checked;
            caught += !check_model_case(c, Backend::cpu, ModelMutant::kv_cache_wrong_position).ok;
        } catch (const ModelError&) {}
    }
    EXPECT_GT(checked, 12);
    EXPECT_GT(caught, 0) << "no reached case exposed kv_cache_wrong_position";
}
