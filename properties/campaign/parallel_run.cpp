#include "properties/campaign/parallel_run.hpp"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernels/registry.hpp"
#ifdef ATTNCHECK_HAVE_CUDA
#include "engine/cuda/device.hpp"
#endif
#include "properties/campaign/child_process.hpp"
#include "properties/campaign/counterexample.hpp"
#include "properties/campaign/external_target.hpp"
#include "properties/campaign/plugin_targets.hpp"
#include "properties/gates/oracle_service.hpp"

extern char** environ;

namespace attncheck {

using nlohmann::json;

std::uint64_t worker_seed(std::uint64_t seed, int worker) {
    if (worker == 0) return seed;
    std::uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(worker); // splitmix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

GenLimits default_limits(Backend b) {
    GenLimits lim;
    if (b == Backend::cuda) {
        lim.max_len = 520;
        lim.max_work = 4000000;
    }
    return lim;
}

RunReport run_share(const RunSpec& spec, int worker, int workers, Drawer drawer) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    reset_phase_totals();
    set_oracle_preference(parse_oracle_preference(spec.oracle));
    const CrossCheckCount checks0 = thread_cross_checks();
#ifdef ATTNCHECK_HAVE_CUDA
    const long long calls0 = cuda_calls_on_thread();
#endif
    RunReport rep;
    rep.workers = workers;
    const auto gates = gate_pointers(spec.gates);
    std::optional<Ledger> ledger;
    if (!spec.known_failures.empty()) ledger = load_ledger(spec.known_failures);
    auto targets = make_run_targets(spec.backend, spec.mutant, spec.targets, spec.plugins, spec.externals);
    for (auto& t : targets) {
        CampaignOptions co;
        // RapidCheck draws one case at a time; an external adapter is drawn
        // by seed, so that a batch of cases can be checked together, and
        // the cases it gets do not depend on its max_batch.
        co.drawer = dynamic_cast<const ExternalTarget*>(t.get()) ? Drawer::seeded : drawer;
        co.ledger = ledger ? &*ledger : nullptr;
        co.seed = worker_seed(spec.seed, worker);
        co.gates = gates;
        co.limits = spec.limits;
#ifdef ATTNCHECK_HAVE_CUDA
        if (t->backend() == Backend::cuda && spec.interleave > 1) {
            co.interleave = spec.interleave;
            co.release = release_thread_stream;
        }
#endif
        if (spec.seconds > 0) {
            co.seconds = spec.seconds / static_cast<double>(targets.size());
            co.cases = 1LL << 40;
            co.round = 5; // keeps a slow target within its share of the wall-clock budget
        } else {
            co.cases = (spec.cases + workers - 1 - worker) / workers; // the shares add up to spec.cases
            if (co.cases == 0) continue;
        }
        const CampaignResult r = run_campaign(*t, co);
        TargetRun tr;
        tr.target = t->full_name();
        tr.cases = r.cases;
        tr.unsupported = r.unsupported;
        tr.seconds = r.seconds;
        tr.known = r.known;
        tr.tallies = r.tallies;
        rep.cases += r.cases;
        add_tallies(rep.tallies, r.tallies);
        if (r.failure) {
            FailureRecord f;
            f.path = spec.out_dir.empty() ? std::string() : save_counterexample(*r.failure, spec.out_dir);
            f.gate = r.failure->gate;
            f.summary = r.failure->summary;
            f.report = r.failure->report;
            f.shrink_steps = r.failure->shrink_steps;
            f.shrink_trajectory = r.failure->shrink_trajectory;
            f.seconds_to_failure = r.seconds_to_failure;
            f.cases_before = r.cases;
            f.worker = worker;
            tr.failure = std::move(f);
        }
        rep.targets.push_back(std::move(tr));
    }
    rep.phases = phase_totals();
    rep.oracle_gpu_evaluations = thread_cross_checks().gpu_evaluations - checks0.gpu_evaluations;
    rep.oracle_cross_checked = thread_cross_checks().cross_checked - checks0.cross_checked;
#ifdef ATTNCHECK_HAVE_CUDA
    rep.cuda_calls = cuda_calls_on_thread() - calls0;
#endif
    rep.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return rep;
}

// ---- JSON codecs (worker <-> parent)

json tallies_json(const std::map<std::string, GateTally>& tallies) {
    json j = json::object();
    for (const auto& [g, t] : tallies)
        j[g] = {t.pass, t.fail, t.skip, t.worst_ratio, t.ratios, t.worst_shape, t.worst_case, t.worst_detail};
    return j;
}

std::map<std::string, GateTally> tallies_from_json(const json& j) {
    std::map<std::string, GateTally> out;
    for (const auto& [g, t] : j.items()) {
        GateTally& x = out[g];
        x.pass = t.at(0).get<long long>();
        x.fail = t.at(1).get<long long>();
        x.skip = t.at(2).get<long long>();
        x.worst_ratio = t.at(3).get<double>();
        x.ratios = t.at(4).get<std::array<long long, kRatioBuckets>>();
        if (t.size() >= 8) { // the worst row (files written before it have none)
            x.worst_shape = t.at(5).get<std::string>();
            x.worst_case = t.at(6).get<std::string>();
            x.worst_detail = t.at(7).get<std::string>();
        }
    }
    return out;
}

std::string run_spec_json(const RunSpec& s) {
    json j;
    j["backend"] = backend_name(s.backend);
    j["mutant"] = mutant_name(s.mutant);
    j["targets"] = s.targets;
    j["gates"] = s.gates;
    j["cases"] = s.cases;
    j["seconds"] = s.seconds;
    j["seed"] = s.seed;
    j["out_dir"] = s.out_dir;
    j["limits"] = {{"max_batch", s.limits.max_batch},
                   {"max_len", s.limits.max_len},
                   {"max_decode_len", s.limits.max_decode_len},
                   {"max_work", s.limits.max_work}};
    j["workers"] = s.workers;
    j["devices"] = s.devices;
    j["processes"] = s.processes;
    j["interleave"] = s.interleave;
    j["oracle"] = s.oracle;
    j["plugins"] = s.plugins;
    j["known_failures"] = s.known_failures;
    j["externals"] = s.externals;
    return j.dump();
}

RunSpec run_spec_from_json(const std::string& text) {
    const json j = json::parse(text);
    RunSpec s;
    s.backend = j.at("backend").get<std::string>() == "cuda" ? Backend::cuda : Backend::cpu;
    const auto m = parse_mutant(j.at("mutant").get<std::string>());
    if (!m) throw std::invalid_argument("worker: unknown mutant in the run spec");
    s.mutant = *m;
    s.targets = j.at("targets").get<std::vector<std::string>>();
    s.gates = j.at("gates").get<std::vector<std::string>>();
    s.cases = j.at("cases").get<long long>();
    s.seconds = j.at("seconds").get<double>();
    s.seed = j.at("seed").get<std::uint64_t>();
    s.out_dir = j.at("out_dir").get<std::string>();
    const json& l = j.at("limits");
    s.limits.max_batch = l.at("max_batch").get<int>();
    s.limits.max_len = l.at("max_len").get<int>();
    s.limits.max_decode_len = l.at("max_decode_len").get<int>();
    s.limits.max_work = l.at("max_work").get<long long>();
    s.workers = j.at("workers").get<int>();
    s.devices = j.at("devices").get<std::vector<int>>();
    s.processes = j.at("processes").get<int>();
    s.interleave = j.at("interleave").get<int>();
    s.oracle = j.at("oracle").get<std::string>();
    s.plugins = j.at("plugins").get<std::vector<std::string>>();
    s.known_failures = j.at("known_failures").get<std::string>();
    s.externals = j.at("externals").get<std::vector<std::string>>();
    return s;
}

std::string run_report_json(const RunReport& r) {
    json j;
    j["cases"] = r.cases;
    j["wall_seconds"] = r.wall_seconds;
    j["workers"] = r.workers;
    j["phases"] = phase_seconds_json(r.phases);
    j["phase_entries"] = phase_entries_json(r.phases);
    j["tallies"] = tallies_json(r.tallies);
    json targets = json::array();
    for (const TargetRun& t : r.targets) {
        json tj = {{"target", t.target},
                   {"cases", t.cases},
                   {"unsupported", t.unsupported},
                   {"seconds", t.seconds},
                   {"also_failed_in", t.also_failed_in},
                   {"known", json::array()}};
        for (const auto& [k, n] : t.known) tj["known"].push_back({k, n});
        tj["tallies"] = tallies_json(t.tallies);
        if (t.failure) {
            const FailureRecord& f = *t.failure;
            tj["failure"] = {{"path", f.path},
                             {"gate", f.gate},
                             {"summary", f.summary},
                             {"report", f.report},
                             {"shrink_steps", f.shrink_steps},
                             {"shrink_trajectory", f.shrink_trajectory},
                             {"seconds_to_failure", f.seconds_to_failure},
                             {"cases_before", f.cases_before},
                             {"worker", f.worker}};
        }
        targets.push_back(tj);
    }
    j["targets"] = targets;
    j["worker_errors"] = r.worker_errors;
    j["oracle_gpu_evaluations"] = r.oracle_gpu_evaluations;
    j["cuda_calls"] = r.cuda_calls;
    j["oracle_cross_checked"] = r.oracle_cross_checked;
    return j.dump();
}

RunReport run_report_from_json(const std::string& text) {
    const json j = json::parse(text);
    RunReport r;
    r.cases = j.at("cases").get<long long>();
    r.wall_seconds = j.at("wall_seconds").get<double>();
    r.workers = j.at("workers").get<int>();
    r.phases = phase_totals_from_json(j.at("phases"), j.at("phase_entries"));
    r.tallies = tallies_from_json(j.at("tallies"));
    for (const json& tj : j.at("targets")) {
        TargetRun t;
        t.target = tj.at("target").get<std::string>();
        t.cases = tj.at("cases").get<long long>();
        t.unsupported = tj.at("unsupported").get<long long>();
        t.seconds = tj.at("seconds").get<double>();
        t.also_failed_in = tj.at("also_failed_in").get<int>();
        for (const json& kn : tj.at("known")) t.known[kn.at(0).get<int>()] = kn.at(1).get<long long>();
        t.tallies = tallies_from_json(tj.at("tallies"));
        if (tj.contains("failure")) {
            const json& fj = tj.at("failure");
            FailureRecord f;
            f.path = fj.at("path").get<std::string>();
            f.gate = fj.at("gate").get<std::string>();
            f.summary = fj.at("summary").get<std::string>();
            f.report = fj.at("report").get<std::string>();
            f.shrink_steps = fj.at("shrink_steps").get<int>();
            f.shrink_trajectory = fj.at("shrink_trajectory").get<std::vector<std::string>>();
            f.seconds_to_failure = fj.at("seconds_to_failure").get<double>();
            f.cases_before = fj.at("cases_before").get<long long>();
            f.worker = fj.at("worker").get<int>();
            t.failure = std::move(f);
        }
        r.targets.push_back(std::move(t));
    }
    r.worker_errors = j.at("worker_errors").get<std::vector<std::string>>();
    r.oracle_gpu_evaluations = j.at("oracle_gpu_evaluations").get<long long>();
    r.cuda_calls = j.at("cuda_calls").get<long long>();
    r.oracle_cross_checked = j.at("oracle_cross_checked").get<long long>();
    return r;
}

namespace {

// Adds one worker's report into the run's: tallies and phases add up, a
// target's cases add up, and a target keeps the failure found first.
void merge_into(RunReport& into, RunReport&& w) {
    into.cases += w.cases;
    into.phases += w.phases;
    into.oracle_gpu_evaluations += w.oracle_gpu_evaluations;
    into.cuda_calls += w.cuda_calls;
    into.oracle_cross_checked += w.oracle_cross_checked;
    add_tallies(into.tallies, w.tallies);
    for (TargetRun& t : w.targets) {
        auto it = std::find_if(into.targets.begin(), into.targets.end(),
                               [&](const TargetRun& x) { return x.target == t.target; });
        if (it == into.targets.end()) {
            into.targets.push_back(std::move(t));
            continue;
        }
        it->cases += t.cases;
        it->unsupported += t.unsupported;
        for (const auto& [k, n] : t.known) it->known[k] += n;
        add_tallies(it->tallies, t.tallies);
        it->seconds += t.seconds;
        if (t.failure) {
            if (!it->failure || t.failure->seconds_to_failure < it->failure->seconds_to_failure) {
                if (it->failure) ++it->also_failed_in;
                it->failure = std::move(t.failure);
            } else {
                ++it->also_failed_in;
            }
        }
    }
    for (auto& e : w.worker_errors) into.worker_errors.push_back(std::move(e));
}

struct Child {
    PipedChild io;
    std::string output;
    bool open = true;
};

Child spawn_worker(const std::string& exe, int w, int workers, const std::vector<int>& devices) {
    // One GPU per worker, round robin, through the runtime's own variable.
    std::vector<std::string> env;
    if (!devices.empty()) {
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0) env.emplace_back(*e);
        env.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(devices[static_cast<size_t>(w) % devices.size()]));
    }
    try {
        return Child{spawn_piped({exe, "_worker", std::to_string(w), std::to_string(workers)}, env), {}, true};
    } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("run: cannot start worker {}: {}", w, e.what()));
    }
}

} // namespace

// CUDA runs: worker threads in this process, sharing one context per
// device, so their streams overlap on the GPU (worker processes would each
// hold a context, and contexts time-slice the GPU: on the H200, 16 worker
// processes checked 40 cases/s against one process's 29). Each thread draws
// with the seeded drawer (RapidCheck's state is global; only shrinking is
// serialized) and runs on devices[w % size].
// Several processes (spec.processes) each run a share of the threads: one
// context's API calls take one lock, which many threads contend for.
RunReport run_threads(const RunSpec& spec, int first, int last) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const int total = std::max(1, spec.workers), n = std::max(0, last - first);
    std::vector<RunReport> reports(static_cast<size_t>(n));
    std::vector<std::string> errors(static_cast<size_t>(n));
    std::vector<std::thread> threads;
#ifdef ATTNCHECK_HAVE_CUDA
    for (int d : spec.devices.empty() ? std::vector<int>{0} : spec.devices) cuda_apply_sync_policy(d);
#endif
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            const int w = first + i;
            try {
#ifdef ATTNCHECK_HAVE_CUDA
                if (!spec.devices.empty())
                    cuda_select_device(spec.devices[static_cast<size_t>(w) % spec.devices.size()]);
#endif
                reports[static_cast<size_t>(i)] = run_share(spec, w, total, Drawer::seeded);
            } catch (const std::exception& e) {
                errors[static_cast<size_t>(i)] = fmt::format("worker thread {}: {}", w, e.what());
            }
        });
    for (auto& t : threads) t.join();
    RunReport all;
    all.workers = n;
    for (int i = 0; i < n; ++i) {
        if (!errors[static_cast<size_t>(i)].empty())
            all.worker_errors.push_back(errors[static_cast<size_t>(i)]);
        else
            merge_into(all, std::move(reports[static_cast<size_t>(i)]));
    }
    all.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return all;
}

RunReport run_parallel(const RunSpec& spec, const std::string& self_exe) {
    const bool cuda = spec.backend == Backend::cuda;
    if (cuda && spec.processes <= 1) return run_threads(spec);
    if (!cuda && spec.workers <= 1) return run_share(spec, 0, 1);
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    // CUDA: processes of threads (each thread picks its device); CPU: a process per worker.
    const int n = cuda ? std::min(spec.processes, std::max(1, spec.workers)) : std::max(1, spec.workers);
    std::vector<Child> kids;
    const std::string spec_text = run_spec_json(spec);
    for (int w = 0; w < n; ++w) {
        kids.push_back(spawn_worker(self_exe, w, n, cuda ? std::vector<int>{} : spec.devices));
        write_all(kids.back().io.in, spec_text, "a worker");
        close(kids.back().io.in);
    }
    // Read every worker's stdout as it comes (a report can exceed a pipe's buffer).
    for (int open = n; open > 0;) {
        std::vector<pollfd> fds;
        for (const Child& c : kids)
            if (c.open) fds.push_back({c.io.out, POLLIN, 0});
        if (poll(fds.data(), fds.size(), -1) < 0) continue;
        for (const pollfd& p : fds) {
            if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
            Child& c = *std::find_if(kids.begin(), kids.end(), [&](const Child& k) { return k.io.out == p.fd; });
            char buf[65536];
            const ssize_t got = read(c.io.out, buf, sizeof buf);
            if (got > 0) {
                c.output.append(buf, static_cast<size_t>(got));
            } else {
                close(c.io.out);
                c.open = false;
                --open;
            }
        }
    }
    RunReport all;
    all.workers = cuda ? 0 : n; // CUDA: the processes' reports count their threads
    for (int w = 0; w < n; ++w) {
        Child& c = kids[static_cast<size_t>(w)];
        int status = 0;
        waitpid(c.io.pid, &status, 0);
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        try {
            if (!ok)
                throw std::runtime_error(WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                                             : fmt::format("exit {}", WEXITSTATUS(status)));
            RunReport r = run_report_from_json(c.output);
            if (cuda) all.workers += r.workers;
            merge_into(all, std::move(r));
        } catch (const std::exception& e) {
            all.worker_errors.push_back(fmt::format("worker {}: {} (its stderr above says more)", w, e.what()));
        }
    }
    all.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return all;
}

int worker_main(int worker, int workers) {
    try {
        const std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
        const RunSpec spec = run_spec_from_json(text);
        const int threads = std::max(1, spec.workers);
        const RunReport rep = spec.backend == Backend::cuda ? run_threads(spec, threads * worker / workers,
                                                                          threads * (worker + 1) / workers) // its share
                                                            : run_share(spec, worker, workers);
        std::cout << run_report_json(rep);
        std::cout.flush();
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "attncheck worker {}: {}\n", worker, e.what());
        return 2;
    }
}

std::string phase_table(const PhaseTotals& t) {
    const double total = t.total();
    std::string out = fmt::format("{:12} {:>10} {:>7} {:>10}  {}\n", "phase", "seconds", "share", "entered", "what");
    for (int i = 0; i < kPhaseCount; ++i) {
        const Phase p = static_cast<Phase>(i);
        out += fmt::format("{:12} {:>10.2f} {:>6.1f}% {:>10}  {}\n", phase_name(p), t.seconds[i],
                           total > 0 ? 100.0 * t.seconds[i] / total : 0.0, t.entries[i], phase_description(p));
    }
    return out;
}

json phase_seconds_json(const PhaseTotals& t) {
    json j = json::object();
    for (int i = 0; i < kPhaseCount; ++i) j[phase_name(static_cast<Phase>(i))] = t.seconds[i];
    return j;
}

json phase_entries_json(const PhaseTotals& t) {
    json j = json::object();
    for (int i = 0; i < kPhaseCount; ++i) j[phase_name(static_cast<Phase>(i))] = t.entries[i];
    return j;
}

PhaseTotals phase_totals_from_json(const json& seconds, const json& entries) {
    PhaseTotals t;
    for (int i = 0; i < kPhaseCount; ++i) {
        const char* n = phase_name(static_cast<Phase>(i));
        if (seconds.contains(n)) t.seconds[i] = seconds.at(n).get<double>();
        if (entries.contains(n)) t.entries[i] = entries.at(n).get<long long>();
    }
    return t;
}

} // namespace attncheck
