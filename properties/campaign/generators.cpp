#include "properties/campaign/generators.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace attncheck {

namespace {

// RapidCheck's elementOf / oneOf / weightedElement do not shrink toward
// their first alternative; an index drawn with inRange does (toward 0), and
// grows with the size parameter, so early cases are the simple ones.
class RapidCheckChooser final : public Chooser {
public:
    long long range(long long lo, long long hi) override { return *rc::gen::inRange(lo, hi); }
};

} // namespace

void showValue(const Case& c, std::ostream& os) { os << case_to_json(c); }

std::string case_shape_summary(const Case& c) {
    std::string s = fmt::format("batch {}, heads {}/{}, d {}, q {}, kv {}, {}", c.batch(), c.n_q_heads, c.n_kv_heads,
                                c.head_dim, c.q_lens, c.kv_lens, dtype_name(c.dtype));
    if (c.causal) s += c.window > 0 ? fmt::format(", causal window {}", c.window) : ", causal";
    if (c.num_splits > 1) s += fmt::format(", {} splits", c.num_splits);
    return s;
}

Case build_case(const Capabilities& caps, const GenLimits& lim, Chooser& ch) {
    CaseFilter f;
    f.decode_only = caps.decode_only;
    f.head_dims = caps.head_dims;
    return draw_case(f, lim, ch);
}

rc::Gen<Case> gen_case(const Capabilities& caps, const GenLimits& lim) {
    return rc::gen::exec([caps, lim] {
        RapidCheckChooser ch;
        return build_case(caps, lim, ch);
    });
}

} // namespace attncheck
