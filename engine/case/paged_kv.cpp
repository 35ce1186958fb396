#include "engine/case/paged_kv.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "engine/case/rng.hpp"

namespace attncheck {

PagedLayout paged_layout(const AttentionProblem& p) {
    if (p.page_size <= 0) throw std::logic_error("paged_layout: the problem has a contiguous KV cache");
    PagedLayout L;
    L.page_size = p.page_size;
    int logical = 0;
    for (int b = 0; b < p.batch(); ++b) {
        L.table_start.push_back(logical);
        logical += (p.kv_lens[b] + p.page_size - 1) / p.page_size;
    }
    L.pool_pages = static_cast<int>(pool_pages_for(logical));
    std::vector<int> order(static_cast<size_t>(L.pool_pages));
    std::iota(order.begin(), order.end(), 0);
    Rng rng(p.page_seed);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    L.table.assign(order.begin(), order.begin() + logical);
    return L;
}

std::vector<float> paged_pool(const AttentionProblem& p, const PagedLayout& layout, const std::vector<float>& kv) {
    if (kv.size() != p.kv_elems())
        throw std::logic_error(
            "paged_pool: K or V does not match the problem's shape (a paged cache is laid out from "
            "the values; a benchmark's problem without values has none)");
    const size_t row = static_cast<size_t>(p.n_kv_heads) * p.head_dim;
    std::vector<float> pool(static_cast<size_t>(layout.pool_pages) * layout.page_size * row,
                            std::numeric_limits<float>::quiet_NaN());
    for (int b = 0; b < p.batch(); ++b)
        for (int j = 0; j < p.kv_lens[b]; ++j) {
            const auto src = kv.begin() + p.kv_index(b, j, 0);
            std::copy(src, src + static_cast<std::ptrdiff_t>(row), pool.begin() + layout.row(b, j) * row);
        }
    return pool;
}

} // namespace attncheck
