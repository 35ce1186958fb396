// A family's K and V on the device as its kernels read them: the
// DeviceProblem's contiguous tensors, or a paged cache's pools and block
// table (engine/case/paged_kv.hpp) laid out on the host from the problem's
// logical tensors and uploaded, each buffer guarded. A benchmark's problem
// (no values, under a KernelClock) gets pools filled on the device, every
// slot with a value, as DeviceProblem fills its tensors. Kernels address
// rows with kv_row_offset (paged_kv_rows.hpp).
#pragma once

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
    DeviceBuffer<T> k_pool, v_pool;
    DeviceBuffer<int> table, table_start;

    KvOnDevice(DeviceProblem<T>& dp, const AttentionProblem& p) : k(dp.k.get()), v(dp.v.get()) {
        if (p.page_size == 0) return;
        const PagedLayout layout = paged_layout(p);
        const bool bench = p.k.empty() && p.v.empty() && KernelClock::installed();
        auto pool = [&](DeviceBuffer<T>& buf, const std::vector<float>& logical, const char* name,
                        unsigned long long salt) {
            if (bench) {
                buf = DeviceBuffer<T>(
                    static_cast<std::size_t>(layout.pool_pages) * layout.page_size * p.n_kv_heads * p.head_dim, name);
                fill_on_device(buf, KernelClock::installed()->plan().fill_seed * 0x9E3779B97F4A7C15ull ^ salt);
                return;
            }
            const std::vector<float> f = paged_pool(p, layout, logical);
            std::vector<T> h(f.size());
            store_floats(f.data(), h.data(), f.size());
            buf = DeviceBuffer<T>(h.size(), name);
            buf.upload(h);
        };
        pool(k_pool, p.k, "paged_kv.k_pool", 2);
        pool(v_pool, p.v, "paged_kv.v_pool", 3);
        auto ints = [](DeviceBuffer<int>& buf, std::vector<int> h, const char* name) {
            h.push_back(0); // never empty (a batch of empty caches has no page)
            buf = DeviceBuffer<int>(h.size(), name);
            buf.upload(h);
        };
        ints(table, layout.table, "paged_kv.block_table");
        ints(table_start, layout.table_start, "paged_kv.table_start");
        k = k_pool.get();
        v = v_pool.get();
        paged = {table.get(), table_start.get(), p.page_size};
    }
    std::vector<GuardRegion> guards() const {
        return {k_pool.guards(), v_pool.guards(), table.guards(), table_start.guards()};
    }
};

} // namespace attncheck::kernels
