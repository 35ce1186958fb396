// A fuzz process's gate tallies (pass, fail, skip and the error/bound
// histogram of each gate, as run reports keep them), left in the out folder
// as tallies-<pid>.json: {"cases": N, "tallies": {...}}. libFuzzer's fork
// mode runs many short processes, and a campaign supervisor sums their files
// into its status (app/campaign_fuzzer.cpp). The file is rewritten at most
// once a second, before a failure aborts, and at exit, so a process that
// dies loses at most a second of counts.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_env.hpp"
#include "properties/campaign/parallel_run.hpp"

namespace attncheck::fuzz {

class Tallies {
public:
    void add(const CaseCheck& chk) {
        ++cases_;
        for (const GateOutcome& o : chk.outcomes) gates_[o.gate->name].add(o.verdict);
        if (std::chrono::steady_clock::now() - written_ > std::chrono::seconds(1)) write();
    }
    void write() {
        written_ = std::chrono::steady_clock::now();
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::create_directories(out_dir(), ec);
        const fs::path p = fs::path(out_dir()) / ("tallies-" + std::to_string(getpid()) + ".json");
        const fs::path tmp = p.string() + ".tmp";
        {
            std::ofstream f(tmp);
            f << nlohmann::json{{"cases", cases_}, {"tallies", tallies_json(gates_)}}.dump() << "\n";
            if (!f) return; // counts are a report, not the check: never stop fuzzing for them
        }
        fs::rename(tmp, p, ec);
    }

private:
    long long cases_ = 0;
    std::map<std::string, GateTally> gates_;
    std::chrono::steady_clock::time_point written_ = std::chrono::steady_clock::now();
};

inline Tallies& tallies() {
    static Tallies* t = [] {
        auto* p = new Tallies; // never destroyed: written by the exit handler
        std::atexit([] { tallies().write(); });
        return p;
    }();
    return *t;
}

} // namespace attncheck::fuzz
