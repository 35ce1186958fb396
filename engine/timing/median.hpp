// The median of a list of timings (0 for an empty list): what every
// benchmark here reports (`bench kernels`, `bench model`).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace attncheck {

inline double median_of(std::vector<double> v) {
    if (v.empty()) return 0.0;
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    if (v.size() % 2) return v[mid];
    const double hi = v[mid];
    return (*std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid)) + hi) / 2;
}

} // namespace attncheck
