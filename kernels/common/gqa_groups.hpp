// Which q heads each kv head serves, for the kernels that serve a whole GQA
// group per block (decode_gqa and decode_split's grouped path build it for
// the kernel; decode_gqa's CPU twin walks it), so that no two of them can
// group heads differently.
#pragma once

#include <stdexcept>
#include <vector>

#include "kernels/common/attention_common.hpp"

namespace attncheck::kernels {

// From kv_head_of<M> (the shared GQA map, and its mutation point):
// table[kv * G + i] is the i-th q head, in increasing order, whose kv head is
// kv. A map that does not split the q heads into equal groups is a logic
// error, not a case to run.
template <Mutant M>
std::vector<int> group_table(const AttnShape& s) {
    const int g = s.n_q_heads / s.n_kv_heads;
    std::vector<int> table(static_cast<size_t>(s.n_q_heads), -1), filled(static_cast<size_t>(s.n_kv_heads), 0);
    for (int h = 0; h < s.n_q_heads; ++h) {
        const int kv = kv_head_of<M>(s, h);
        if (kv < 0 || kv >= s.n_kv_heads || filled[kv] >= g)
            throw std::logic_error("group_table: the GQA map does not split the q heads into equal groups");
        table[static_cast<size_t>(kv) * g + filled[kv]++] = h;
    }
    return table;
}

} // namespace attncheck::kernels
