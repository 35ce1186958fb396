// libFuzzer target: arbitrary bytes as a case file. Parsing must either
// produce a valid Case or throw CaseError -- never crash, hang or accept
// something that then fails to materialize. Accepted cases must round-trip
// through JSON unchanged and, when small, materialize to dtype-exact values.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"

using namespace attncheck;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    Case c;
    try {
        c = parse_case(text);
    } catch (const CaseError&) {
        return 0; // rejected with a message: fine
    }
    const std::string j = case_to_json(c);
    Case back;
    try {
        back = parse_case(j);
    } catch (const CaseError& e) {
        std::fprintf(stderr, "accepted case does not re-parse: %s\n%s\n", e.what(), j.c_str());
        std::abort();
    }
    if (!(back == c)) {
        std::fprintf(stderr, "round trip changed the case:\n%s\n", j.c_str());
        std::abort();
    }
    long long elems = 0;
    for (int b = 0; b < c.batch(); ++b)
        elems += static_cast<long long>(c.q_lens[b] * c.n_q_heads + 2LL * c.kv_lens[b] * c.n_kv_heads) * c.head_dim;
    if (elems <= (1 << 16)) {
        const AttentionProblem p = materialize(c);
        for (const auto* t : {&p.q, &p.k, &p.v})
            for (float x : *t)
                if (!(round_to(c.dtype, x) == x) && x == x) std::abort();
    }
    return 0;
}
