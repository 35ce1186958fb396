// The parts of a case's data recipe that the host (materialize(), in
// problem.cpp) and the device (materialize_on_device(), in
// materialize_device.cu) share, so that the two cannot drift apart: the
// stream tags, the draw of one value, and the per-head and per-channel
// vectors every sequence uses.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/case/case.hpp"
#include "engine/case/host_device.hpp"
#include "engine/case/rng.hpp"

namespace attncheck {

// Stream tags: tensor T of sequence b draws from root.fork((b << 8) | kTagT),
// the per-head vectors from root.fork(their tag), root being Rng(seed).
enum : std::uint64_t { kTagQ = 1, kTagK = 2, kTagV = 3, kTagSink = 4, kTagQBias = 5, kTagKBias = 6 };

ATTNCHECK_HD inline double draw(Rng& rng, Dist d) {
    switch (d) {
        case Dist::normal:
            return rng.normal();
        case Dist::uniform:
            return rng.uniform_pm1();
        case Dist::sparse_int:
            // 70% zeros; otherwise a small non-zero integer in [-3, 3].
            if (rng.coin(0.7)) return 0.0;
            return static_cast<double>(rng.coin(0.5) ? rng.range(1, 3) : -rng.range(1, 3));
    }
    return 0.0;
}

// Shared by all sequences of a case.
struct RecipeTables {
    std::vector<double> sink_dir; // [n_kv_heads][head_dim], +-1
    std::vector<double> qb;       // [n_q_heads][head_dim], the Q bias direction
    std::vector<double> kb;       // [n_kv_heads][head_dim], the K bias direction
    std::vector<double> out_mult; // [head_dim]: outlier_factor on outlier channels, else 1
};
RecipeTables recipe_tables(const Case& c);

} // namespace attncheck
