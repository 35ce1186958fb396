// Where key j's K or V row of a sequence lives, for every family that reads
// a paged KV cache (engine/case/paged_kv.hpp) and its CPU twin: the
// contiguous tensors, or the pool through the block table. One function
// (kv_row_offset) for host and device, so that a twin and its kernel cannot
// address a page differently; the page-boundary mutant lives in paged_row
// (attention_common.hpp).
#pragma once

#include <vector>

#include "engine/case/paged_kv.hpp"
#include "kernels/common/attention_common.hpp"

namespace attncheck::kernels {

// A paged KV cache's block table as kernels take it (by value): page_size 0
// means K and V are the contiguous tensors; otherwise they are the pools and
// key j of sequence b is pool row paged_row(table + table_start[b], page_size, j).
struct PagedTableView {
    const int* table = nullptr;
    const int* table_start = nullptr;
    int page_size = 0;
};

// Offset (elements) of the row of key j, kv head `head`, of sequence `seq`
// whose keys start at token kv_start in the contiguous layout.
template <Mutant M>
AC_HD long long kv_row_offset(const PagedTableView& pg, long long kv_start, int seq, int j, int head, int n_kv_heads,
                              int head_dim) {
    const long long row = pg.page_size ? paged_row<M>(pg.table + pg.table_start[seq], pg.page_size, j) : kv_start + j;
    return (row * n_kv_heads + head) * head_dim;
}

// A CPU twin's K and V: the problem's tensors, or the pools of its paged
// layout, with the view of its block table.
struct KvRowsHost {
    PagedLayout layout;
    std::vector<float> k_pool, v_pool;
    const float* k = nullptr;
    const float* v = nullptr;
    PagedTableView view;

    explicit KvRowsHost(const AttentionProblem& p) : k(p.k.data()), v(p.v.data()) {
        if (p.page_size == 0) return;
        layout = paged_layout(p);
        k_pool = paged_pool(p, layout, p.k);
        v_pool = paged_pool(p, layout, p.v);
        k = k_pool.data();
        v = v_pool.data();
        view = {layout.table.data(), layout.table_start.data(), p.page_size};
    }
};

} // namespace attncheck::kernels
