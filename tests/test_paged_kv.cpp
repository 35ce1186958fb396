// Paged KV caches (engine/case/paged_kv.hpp, Case.page_size): the layout is
// a permutation of pages with NaN wherever no key is; the Case carries it
// through JSON and validation; decode_split's CPU twin gives the contiguous
// bits through any layout; the page-boundary mutant is killed by the paging
// gate, first; families that do not page refuse paged cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "engine/case/case_distribution.hpp"
#include "engine/case/paged_kv.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/target_capabilities.hpp"
#include "properties/gates/case_check.hpp"

namespace attncheck {
namespace {

Case paged_case(int page_size, std::vector<int> kv_lens, std::uint64_t page_seed = 5) {
    Case c;
    c.n_q_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 64;
    c.kv_lens = std::move(kv_lens);
    c.q_lens.assign(c.kv_lens.size(), 1);
    c.dtype = DType::f16;
    c.num_splits = 3;
    c.page_size = page_size;
    c.page_seed = page_seed;
    c.data.seed = 11;
    return c;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(PagedKv, LayoutIsAPermutationWithNaNWhereNoKeyIs) {
    for (int page : {1, 5, 16, 64}) {
        const AttentionProblem p = materialize(paged_case(page, {0, 17, 64, 3}));
        const PagedLayout L = paged_layout(p);
        const int logical = 0 + (17 + page - 1) / page + (64 + page - 1) / page + (3 + page - 1) / page;
        ASSERT_EQ(static_cast<int>(L.table.size()), logical);
        EXPECT_EQ(L.pool_pages, pool_pages_for(logical));
        EXPECT_GT(L.pool_pages, logical) << "no spare page";
        const std::set<int> distinct(L.table.begin(), L.table.end());
        EXPECT_EQ(static_cast<int>(distinct.size()), logical) << "two logical pages share a physical one";
        for (int t : L.table) EXPECT_TRUE(t >= 0 && t < L.pool_pages);
        const std::vector<float> pool = paged_pool(p, L, p.k);
        const size_t row = static_cast<size_t>(p.n_kv_heads) * p.head_dim;
        std::vector<bool> holds_key(pool.size() / row, false);
        for (int b = 0; b < p.batch(); ++b)
            for (int j = 0; j < p.kv_lens[b]; ++j) {
                const long long r = L.row(b, j);
                holds_key[static_cast<size_t>(r)] = true;
                for (size_t e = 0; e < row; ++e)
                    ASSERT_EQ(pool[static_cast<size_t>(r) * row + e], p.k[p.kv_index(b, j, 0) + e]);
            }
        for (size_t r = 0; r < holds_key.size(); ++r) {
            if (!holds_key[r]) {
                ASSERT_TRUE(std::isnan(pool[r * row])) << "pool row " << r << " holds no key";
            }
        }
    }
}

TEST(PagedKv, PageOrderDependsOnTheSeed) {
    const PagedLayout a = paged_layout(materialize(paged_case(16, {200}, 1)));
    const PagedLayout b = paged_layout(materialize(paged_case(16, {200}, 2)));
    EXPECT_NE(a.table, b.table);
    EXPECT_EQ(a.table, paged_layout(materialize(paged_case(16, {200}, 1))).table);
}

TEST(PagedKv, CaseJsonAndValidation) {
    const Case c = paged_case(5, {9, 40}, 123456789012345ull);
    const Case back = parse_case(case_to_json(c));
    EXPECT_EQ(back, c);
    EXPECT_EQ(back.page_size, 5);
    EXPECT_EQ(back.page_seed, 123456789012345ull);
    // A contiguous case writes no paging fields (the corpus keeps its bytes).
    EXPECT_EQ(case_to_json(paged_case(0, {4})).find("page_size"), std::string::npos);
    Case bad = c;
    bad.page_size = -1;
    EXPECT_THROW(validate(bad), CaseError);
    bad.page_size = CaseLimits::max_page_size + 1;
    EXPECT_THROW(validate(bad), CaseError);
    bad = c; // a pool far over the element limit
    bad.page_size = CaseLimits::max_page_size;
    bad.kv_lens.assign(64, 1);
    bad.q_lens.assign(64, 1);
    bad.n_q_heads = bad.n_kv_heads = 64;
    bad.head_dim = 128;
    try {
        validate(bad);
        FAIL() << "a huge pool was accepted";
    } catch (const CaseError& e) {
        EXPECT_NE(std::string(e.what()).find("paged KV pool"), std::string::npos) << e.what();
    }
}

TEST(PagedKv, DecodeSplitTwinGivesTheContiguousBits) {
    auto t = make_target("decode_split", Backend::cpu);
    ASSERT_TRUE(t->reads_paged_kv());
    for (int page : {1, 5, 16, 32, 256})
        for (DType dt : {DType::f32, DType::bf16}) {
            Case c = paged_case(page, {70, 0, 33});
            c.dtype = dt;
            c.causal = true;
            c.window = page == 5 ? 20 : 0;
            ASSERT_EQ(t->unsupported(c), "");
            const Observation paged = t->run(materialize(c));
            c.page_size = 0;
            const Observation flat = t->run(materialize(c));
            EXPECT_TRUE(same_bits(paged.o, flat.o)) << "page " << page;
            EXPECT_TRUE(same_bits(paged.lse, flat.lse)) << "page " << page;
        }
}

TEST(PagedKv, PageBoundaryMutantIsKilledByThePagingGate) {
    auto t = make_target("decode_split", Backend::cpu, Mutant::page_boundary_off_by_one);
    const auto gates = gate_pointers({});
    // Within one page nothing is wrong: the gates hold.
    const CaseCheck inside = check_case(*t, paged_case(64, {40}), gates);
    EXPECT_EQ(inside.failure(), nullptr);
    // Across a boundary the paging gate names it, before parity.
    const CaseCheck across = check_case(*t, paged_case(16, {40, 17}), gates);
    ASSERT_NE(across.failure(), nullptr);
    EXPECT_STREQ(across.failure()->gate->name, "paging") << across.failure()->verdict.summary;
}

TEST(PagedKv, FamiliesThatDoNotPageRefusePagedCases) {
    for (const std::string& name : family_names()) {
        auto t = make_target(name, Backend::cpu);
        const std::string why = t->unsupported(paged_case(16, {40}));
        if (t->reads_paged_kv()) {
            EXPECT_EQ(why, "") << name;
        } else {
            EXPECT_NE(why.find("no paged KV cache"), std::string::npos) << name << ": " << why;
            EXPECT_FALSE(probe_capabilities(*t).paged_kv) << name;
        }
    }
    EXPECT_TRUE(probe_capabilities(*make_target("decode_split", Backend::cpu)).paged_kv);
}

TEST(PagedKv, DistributionDrawsPageBoundariesOnlyForTargetsThatPage) {
    CaseFilter paging, contiguous;
    paging.paged_kv = true;
    int paged = 0, crossing = 0, tiny_pages = 0;
    for (std::uint64_t seed = 0; seed < 2000; ++seed) {
        SeededChooser a(seed), b(seed);
        const Case c = draw_case(paging, {}, a);
        const Case d = draw_case(contiguous, {}, b);
        EXPECT_EQ(d.page_size, 0) << "seed " << seed;
        // Paging is drawn last: every other axis draws the same either way.
        Case flat = c;
        flat.page_size = 0;
        flat.page_seed = 0;
        EXPECT_EQ(flat, d) << "seed " << seed;
        if (c.page_size == 0) continue;
        ++paged;
        tiny_pages += c.page_size < 16;
        for (int len : c.kv_lens) crossing += len > c.page_size;
    }
    EXPECT_GT(paged, 2000 / 5) << "about a third of the cases of a paging target are paged";
    EXPECT_GT(crossing, paged / 3) << "page boundaries inside the cache";
    EXPECT_GT(tiny_pages, 0) << "pages of 1 and 5 keys";
}

} // namespace
} // namespace attncheck
