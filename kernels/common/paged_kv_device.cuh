// A family's K and V on the device as its kernels read them: the
// DeviceProblem's contiguous tensors, or a paged cache's pools and block
// table (engine/case/paged_kv.hpp) laid out on the host from the problem's
// logical tensors and uploaded, each buffer guarded. A benchmark's problem
// (no values, under a KernelClock) gets pools filled on the device, every
// slot with a value, as DeviceProblem fills its tensors. Kernels address
// rows with kv_row_offset (paged_kv_rows.hpp).
#pragma once

#include <algorithm>
#include <vector>

#include "engine/case/paged_kv.hpp"
#include "engine/cuda/kernel_clock.hpp"
#include "kernels/common/device_problem.cuh"
#include "kernels/common/paged_kv_rows.hpp"

namespace attncheck::kernels {

template <class T>
struct KvOnDevice {
    const T* k = nullptr;
    const T* v = nullptr;
    PagedTableView paged;
    // Pools and tables share one arena: one allocation and one upload (the
    // pools converted straight into the pinned image), as DeviceProblem's
    // tensors do.
    DeviceArena arena;
    DeviceBuffer<T> k_pool, v_pool;
    DeviceBuffer<int> table, table_start;

    KvOnDevice(DeviceProblem<T>& dp, const AttentionProblem& p) : k(dp.k.get()), v(dp.v.get()) {
        if (p.page_size == 0) return;
        const PagedLayout layout = paged_layout(p);
        const bool bench = p.k.empty() && p.v.empty() && KernelClock::installed();
        const std::size_t pool_elems =
            static_cast<std::size_t>(layout.pool_pages) * layout.page_size * p.n_kv_heads * p.head_dim;
        // Tables never empty: a batch of empty caches has no page.
        const std::size_t nt = layout.table.size() + 1, ns = layout.table_start.size() + 1;
        const std::size_t rk = arena.reserve<T>(pool_elems), rv = arena.reserve<T>(pool_elems),
                          rt = arena.reserve<int>(nt), rs = arena.reserve<int>(ns);
        arena.begin_image();
        auto pool = [&](std::size_t region, const std::vector<float>& logical) {
            if (bench) { // filled on the device below
                arena.poison_image(region, pool_elems * sizeof(T));
                return;
            }
            const std::vector<float> f = paged_pool(p, layout, logical);
            store_floats(f.data(), arena.image_payload<T>(region), f.size());
        };
        pool(rk, p.k);
        pool(rv, p.v);
        auto ints = [&](std::size_t region, const std::vector<int>& h) {
            int* x = arena.image_payload<int>(region);
            std::copy(h.begin(), h.end(), x);
            x[h.size()] = 0;
        };
        ints(rt, layout.table);
        ints(rs, layout.table_start);
        arena.upload();
        k_pool = arena.view<T>(rk, pool_elems, "paged_kv.k_pool");
        v_pool = arena.view<T>(rv, pool_elems, "paged_kv.v_pool");
        table = arena.view<int>(rt, nt, "paged_kv.block_table");
        table_start = arena.view<int>(rs, ns, "paged_kv.table_start");
        if (bench) {
            const unsigned long long seed = KernelClock::installed()->plan().fill_seed * 0x9E3779B97F4A7C15ull;
            fill_on_device(k_pool, seed ^ 2);
            fill_on_device(v_pool, seed ^ 3);
        }
        k = k_pool.get();
        v = v_pool.get();
        paged = {table.get(), table_start.get(), p.page_size};
    }
    std::vector<GuardRegion> guards() const {
        return {k_pool.guards(), v_pool.guards(), table.guards(), table_start.guards()};
    }
};

} // namespace attncheck::kernels
