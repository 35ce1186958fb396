#include "properties/campaign/generators.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace attncheck {

namespace {

// RapidCheck's elementOf / oneOf / weightedElement do not shrink toward
// their first alternative; an index drawn with inRange does (toward 0), and
// grows with the size parameter, so early cases are the simple ones.
class RapidCheckChooser final : public Chooser {
public:
    long long range(long long lo, long long hi) override { return *rc::gen::inRange(lo, hi); }
};

class ReplayChooser final : public Chooser {
public:
    explicit ReplayChooser(const ChoiceRecord& r) : r_(r) {}
    long long range(long long lo, long long hi) override {
        const long long off = i_ < r_.size() ? r_[i_] : 0;
        ++i_;
        return lo + std::clamp(off, 0LL, std::max(0LL, hi - lo - 1));
    }

private:
    const ChoiceRecord& r_;
    size_t i_ = 0;
};

} // namespace

long long RecordingChooser::range(long long lo, long long hi) {
    const long long v = inner_.range(lo, hi);
    record_.push_back(v - lo);
    return v;
}

rc::Gen<Case> gen_replayed_case(const Capabilities& caps, const GenLimits& lim, ChoiceRecord record) {
    return rc::Gen<Case>([caps, lim, record](const rc::Random&, int) {
        auto choices = rc::shrinkable::shrinkRecur(record, [](const ChoiceRecord& r) {
            return rc::shrink::eachElement(r, [](long long x) { return rc::shrink::towards(x, 0LL); });
        });
        return rc::shrinkable::map(std::move(choices), [caps, lim](const ChoiceRecord& r) {
            ReplayChooser ch(r);
            return build_case(caps, lim, ch);
        });
    });
}

void showValue(const Case& c, std::ostream& os) { os << case_to_json(c); }

std::string case_shape_summary(const Case& c) {
    std::string s = fmt::format("batch {}, heads {}/{}, d {}, q {}, kv {}, {}", c.batch(), c.n_q_heads, c.n_kv_heads,
                                c.head_dim, c.q_lens, c.kv_lens, dtype_name(c.dtype));
    if (c.causal) s += c.window > 0 ? fmt::format(", causal window {}", c.window) : ", causal";
    if (c.num_splits > 1) s += fmt::format(", {} splits", c.num_splits);
    if (c.page_size > 0) s += fmt::format(", pages of {}", c.page_size);
    return s;
}

Case build_case(const Capabilities& caps, const GenLimits& lim, Chooser& ch) {
    CaseFilter f;
    f.decode_only = caps.decode_only;
    f.paged_kv = caps.paged_kv;
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
