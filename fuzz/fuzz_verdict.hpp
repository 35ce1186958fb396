// A parser's verdict on fuzz input, shared by the parser fuzz targets: what it
// accepted, or nothing when it refused the input with one of the errors it
// documents (a message: fine). Any other exception escapes, and libFuzzer
// reports it as the bug it is.
#pragma once

#include <exception>
#include <optional>

namespace attncheck::fuzz {

template <class... Refusals, class Parse>
auto accepted(Parse&& parse) -> std::optional<decltype(parse())> {
    try {
        return parse();
    } catch (const std::exception& e) {
        if ((dynamic_cast<const Refusals*>(&e) || ...)) return std::nullopt;
        throw;
    }
}

} // namespace attncheck::fuzz
