#include "properties/campaign/target_capabilities.hpp"

namespace attncheck {

const std::vector<int>& candidate_head_dims() {
    static const std::vector<int> v = {1,  2,  3,  4,  5,  7,   8,   12,  16,  24,  31,  32,  33,  48, 63,
                                       64, 65, 72, 80, 96, 100, 112, 127, 128, 129, 160, 192, 255, 256};
    return v;
}

Capabilities probe_capabilities(const Target& t) {
    Capabilities caps;
    auto probe = [&](DType dt, int d, int q_len, int page_size = 0) {
        Case c;
        c.page_size = page_size;
        c.n_q_heads = 2;
        c.n_kv_heads = 1;
        c.head_dim = d;
        c.q_lens = {q_len};
        c.kv_lens = {4};
        c.dtype = dt;
        return t.unsupported(c).empty();
    };
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
        std::vector<int> dims;
        for (int d : candidate_head_dims())
            if (probe(dt, d, 1)) dims.push_back(d);
        if (dims.empty()) continue;
        caps.dtypes.push_back(dt);
        caps.head_dims[dt] = dims;
    }
    if (!caps.empty()) {
        const DType dt = caps.dtypes.front();
        const int d = caps.head_dims[dt].front();
        caps.decode_only = !probe(dt, d, 3);
        caps.paged_kv = t.reads_paged_kv() && probe(dt, d, 1, 16);
    }
    return caps;
}

} // namespace attncheck
