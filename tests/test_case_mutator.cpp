// The fuzzers' structure-aware case mutator (properties/campaign/
// case_mutator.hpp): from random cases of every CPU target, every kind of
// mutation, many times. Each result must be valid, fit the limits and the
// target (its capabilities and its own unsupported()), and each kind must
// change the case in the way its name says at least some of the time.
#include <gtest/gtest.h>

#include <map>

#include "kernels/registry.hpp"
#include "properties/campaign/case_mutator.hpp"

using namespace attncheck;

namespace {

struct Subject {
    std::unique_ptr<Target> target;
    MutationContext ctx;
};

std::vector<Subject> subjects() {
    std::vector<Subject> out;
    for (auto& t : make_targets(Backend::cpu)) {
        Subject s;
        s.ctx.caps = probe_capabilities(*t);
        s.ctx.limits.max_work = 60000;
        const Target* raw = t.get();
        s.ctx.supported = [raw](const Case& c) { return raw->unsupported(c).empty(); };
        s.target = std::move(t);
        out.push_back(std::move(s));
    }
    return out;
}

Case start_case(const Subject& s, std::uint64_t seed) {
    SeededChooser ch(seed);
    CaseFilter f;
    f.decode_only = s.ctx.caps.decode_only;
    f.head_dims = s.ctx.caps.head_dims;
    Case c = draw_case(f, s.ctx.limits, ch);
    EXPECT_TRUE(fit_case(c, s.ctx));
    return c;
}

void expect_fits(const Case& m, const Subject& s, const char* what) {
    EXPECT_NO_THROW(validate(m)) << what;
    EXPECT_LE(case_work(m), s.ctx.limits.max_work) << what;
    EXPECT_TRUE(s.target->unsupported(m).empty()) << what << ": " << s.target->unsupported(m);
    if (s.ctx.caps.decode_only) {
        for (int q : m.q_lens) EXPECT_LE(q, 1) << what;
    }
}

bool at_tile_edge(int n) {
    for (int w : {16, 32, 64, 128})
        for (int k = 1; k <= 4; ++k)
            if (std::abs(n - w * k) <= 1) return true;
    return false;
}

} // namespace

TEST(CaseMutator, EveryKindGivesValidSupportedCasesAndChangesThem) {
    const std::vector<Subject> all = subjects();
    ASSERT_EQ(all.size(), family_names().size());
    long long total = 0;
    for (const Subject& s : all) {
        std::map<CaseMutation, int> changed;
        for (int k = 0; k < case_mutation_count(); ++k) {
            const auto kind = static_cast<CaseMutation>(k);
            Rng rng(1000 + k);
            for (int i = 0; i < 60; ++i) {
                const Case c = start_case(s, 17 * i + k);
                bool did = false;
                const Case m = mutate_case_as(c, s.ctx, rng, kind, &did);
                expect_fits(m, s, case_mutation_name(kind));
                if (did) {
                    EXPECT_FALSE(m == c) << case_mutation_name(kind) << " claims a change it did not make";
                    ++changed[kind];
                    ++total;
                } else {
                    EXPECT_TRUE(m == c);
                }
            }
        }
        for (int k = 0; k < case_mutation_count(); ++k) {
            const auto kind = static_cast<CaseMutation>(k);
            // A decode-only target cannot put q past kv; a target with one
            // dtype or one head dim cannot change it; one that does not page
            // has no pages.
            const bool impossible = (kind == CaseMutation::q_past_kv && s.ctx.caps.decode_only) ||
                                    (kind == CaseMutation::dtype && s.ctx.caps.dtypes.size() < 2) ||
                                    (kind == CaseMutation::page_edge && !s.ctx.caps.paged_kv);
            if (!impossible) {
                EXPECT_GT(changed[kind], 0) << s.target->full_name() << ": " << case_mutation_name(kind);
            }
        }
    }
    EXPECT_GT(total, static_cast<long long>(all.size()) * case_mutation_count() * 60 / 2)
        << "most mutations change the case";
}

TEST(CaseMutator, MovesLengthsToTileEdgesAndSplitsPastTheTiles) {
    const Subject s = std::move(subjects().front());
    Rng rng(5);
    int edges = 0, splits_past = 0;
    for (int i = 0; i < 200; ++i) {
        const Case c = start_case(s, i);
        bool did = false;
        const Case m = mutate_case_as(c, s.ctx, rng, CaseMutation::tile_edge, &did);
        if (did)
            for (int n : m.kv_lens) edges += at_tile_edge(n);
        const Case sp = mutate_case_as(c, s.ctx, rng, CaseMutation::split_edge, &did);
        int longest = 0;
        for (int n : sp.kv_lens) longest = std::max(longest, n);
        if (did && sp.num_splits > (longest + 63) / 64) ++splits_past;
    }
    EXPECT_GT(edges, 20);
    EXPECT_GT(splits_past, 10);
}

TEST(CaseMutator, RandomWalksStayValidAndCrossOverTakesShapeAndData) {
    for (const Subject& s : subjects()) {
        Rng rng(99);
        Case c = start_case(s, 3);
        std::map<CaseMutation, int> seen;
        for (int step = 0; step < 300; ++step) {
            CaseMutation kind{};
            const Case m = mutate_case(c, s.ctx, rng, &kind);
            expect_fits(m, s, "walk");
            if (!(m == c)) ++seen[kind];
            c = m;
        }
        EXPECT_GE(seen.size(), 10u) << s.target->full_name();
        const Case a = start_case(s, 41), b = start_case(s, 42);
        const Case x = cross_cases(a, b, s.ctx, rng);
        expect_fits(x, s, "cross-over");
        EXPECT_TRUE(x == a || x.data == b.data);
    }
}
