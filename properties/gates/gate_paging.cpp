// Gate "paging": a paged KV cache (Case.page_size > 0, engine/case/paged_kv.hpp)
// gives the bits of the contiguous cache, and of the same pages in another
// order. A kernel that pages only reads its keys from other addresses: the
// arithmetic, the tiles and the splits are the same, so anything but equal
// bits is a key read through the wrong page (an off-by-one at a page
// boundary, a stale table entry, a slot past a page's end: the pool's
// unused slots are NaN). Comparing the target with itself keeps the gate
// specific: a numeric bug that hits both layouts alike is another gate's.
#include <fmt/format.h>

#include "properties/gates/gate_util.hpp"
#include "properties/gates/gates.hpp"

namespace attncheck::gates {

GateVerdict paging(GateContext& ctx) {
    const AttentionProblem& p = ctx.problem();
    if (p.page_size == 0) return GateVerdict::skip("contiguous KV cache (page_size 0)");
    if (!ctx.target().reads_paged_kv()) return GateVerdict::skip("the target reads contiguous K and V only");
    const Observation& base = ctx.base();
    AttentionProblem contiguous = p;
    contiguous.page_size = 0;
    contiguous.page_seed = 0;
    AttentionProblem reordered = p;
    reordered.page_seed = p.page_seed ^ 0x9E3779B97F4A7C15ull; // another permutation of the pool
    const std::pair<const char*, const AttentionProblem*> layouts[] = {{"the contiguous cache", &contiguous},
                                                                       {"another page order", &reordered}};
    for (const auto& [what, q] : layouts) {
        if (!ctx.supports(*q)) return GateVerdict::skip(fmt::format("{}: {}", what, ctx.unsupported(*q)));
        const Observation o = ctx.run(*q);
        if (auto diff = first_bit_difference(p, base, o))
            return GateVerdict::fail(
                fmt::format("pages of {} keys against {}: {} (paged, then {})", p.page_size, what, diff->where, what),
                diff->row);
    }
    return GateVerdict::pass(
        fmt::format("pages of {} keys: bitwise equal to the contiguous cache and to another page "
                    "order ({} O elements)",
                    p.page_size, base.o.size()));
}

} // namespace attncheck::gates
