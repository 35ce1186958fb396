// A paged KV cache, as serving engines keep one (vLLM's block tables,
// FlashInfer's paged decode): a sequence's keys are cut into pages of
// page_size keys, and logical page i of the sequence lives at physical page
// table[table_start[seq] + i] of one pool shared by the batch. The layout is
// a function of the problem (kv_lens, page_size, page_seed), so a gate that
// transforms a problem (fewer sequences, other lengths) gets a consistent
// layout for free; the values are the problem's logical K and V either way,
// so the oracle never sees pages.
//
// The pool holds every sequence's pages in an order drawn from page_seed
// (Fisher-Yates over all slots), plus spare pages, so that pages of one
// sequence are neither adjacent nor in order. Every slot that holds no key
// (the spare pages, the tail of each sequence's last page) is NaN: a kernel
// that reads a key through the wrong page or past a page's end reads NaN or
// another sequence's key, and the gates see it.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/case/problem.hpp"

namespace attncheck {

struct PagedLayout {
    int page_size = 0;
    int pool_pages = 0;           // pages in the pool, spare ones included
    std::vector<int> table;       // physical page of each logical page, sequences in batch order
    std::vector<int> table_start; // [batch] first table entry of each sequence
    // The pool row (page * page_size + slot) holding key j of sequence seq.
    long long row(int seq, int j) const {
        return static_cast<long long>(table[static_cast<size_t>(table_start[seq] + j / page_size)]) * page_size +
               j % page_size;
    }
};

// Pages in the pool for `logical` pages of keys: half as many spare pages
// again, at least one, so that a wrong page is as likely a NaN one as
// another sequence's.
inline long long pool_pages_for(long long logical) { return logical + logical / 2 + 1; }

// Elements of the pool (K or V) for caches of these lengths: what
// validate() caps and the distribution keeps small.
inline long long paged_pool_elems(const std::vector<int>& kv_lens, int page_size, int n_kv_heads, int head_dim) {
    long long logical = 0;
    for (int len : kv_lens) logical += (len + page_size - 1) / page_size;
    return pool_pages_for(logical) * page_size * n_kv_heads * head_dim;
}

// The layout of p (p.page_size > 0; throws std::logic_error otherwise).
PagedLayout paged_layout(const AttentionProblem& p);

// K or V of p (kv: p.k or p.v, the logical [total_kv][n_kv_heads][head_dim])
// laid out in the pool: [pool_pages * page_size][n_kv_heads][head_dim], NaN
// where no key is.
std::vector<float> paged_pool(const AttentionProblem& p, const PagedLayout& layout, const std::vector<float>& kv);

} // namespace attncheck
