#include "properties/campaign/libfuzzer_log.hpp"

#include <regex>
#include <sstream>

namespace attncheck {

namespace {

long long number_after(const std::string& line, const std::regex& re) {
    std::smatch m;
    return std::regex_search(line, m, re) ? std::stoll(m[1].str()) : -1;
}

} // namespace

std::vector<LibFuzzerStats> libfuzzer_stats(const std::string& log) {
    static const std::regex status(R"(^#(\d+):?\s.*\bcov: (\d+) ft: (\d+) corp: (\d+))");
    static const std::regex rate(R"(exec/s:? (\d+))");
    static const std::regex crashes(R"(oom/timeout/crash: \d+/\d+/(\d+))");
    static const std::regex time(R"( time: (\d+)s)");
    std::vector<LibFuzzerStats> out;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, status)) continue;
        LibFuzzerStats s;
        s.execs = std::stoll(m[1].str());
        s.coverage = std::stoll(m[2].str());
        s.features = std::stoll(m[3].str());
        s.corpus = std::stoll(m[4].str());
        s.execs_per_s = std::max(0LL, number_after(line, rate));
        s.crashes = std::max(0LL, number_after(line, crashes));
        s.seconds = static_cast<double>(number_after(line, time));
        out.push_back(s);
    }
    return out;
}

std::optional<LibFuzzerStats> last_libfuzzer_stats(const std::string& log) {
    auto all = libfuzzer_stats(log);
    if (all.empty()) return std::nullopt;
    return all.back();
}

} // namespace attncheck
