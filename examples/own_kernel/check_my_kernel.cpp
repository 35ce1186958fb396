// Testing your own attention kernel with attncheck: a naive fp32 kernel (the
// "user's kernel"), wrapped as an attncheck Target, checked by a property
// campaign over every gate; then the same kernel with its softmax scale
// applied twice, which the campaign must catch and shrink to a small case
// that replays. Exit 0 only when both come out that way.
//
// Written against the installed package only: <attncheck/attncheck.hpp>.
#include <attncheck/attncheck.hpp>

#include <cstdio>

#include "my_kernel.hpp"

int main() {
    using namespace attncheck;
    using my_kernel::MyKernel;
    CampaignOptions opt;
    opt.cases = 300;
    opt.seed = 1;

    MyKernel good(false);
    const CampaignResult g = run_campaign(good, opt);
    std::printf("my_kernel: %lld cases, %s\n", g.cases, g.failure ? "FAILED" : "every gate held");
    if (g.failure) {
        std::printf("%s\n", g.failure->report.c_str());
        return 1;
    }

    MyKernel bad(true);
    const CampaignResult b = run_campaign(bad, opt);
    if (!b.failure) {
        std::printf("my_kernel_scale_twice: not caught in %lld cases\n", b.cases);
        return 1;
    }
    const std::string path = save_counterexample(*b.failure, "own_kernel_counterexamples");
    std::printf("my_kernel_scale_twice: caught by %s after %lld cases, shrunk in %d steps: %s\n",
                b.failure->gate.c_str(), b.cases, b.failure->shrink_steps, path.c_str());
    // The saved file replays: the same gate fails on the shrunk case.
    const CounterexampleFile f = load_counterexample(path);
    const CaseCheck again = check_case(bad, f.kase, gate_pointers({}));
    if (!again.failure() || again.failure()->gate->name != b.failure->gate) {
        std::printf("the counterexample did not replay\n");
        return 1;
    }
    std::printf("replayed: %s fails %s again\n", path.c_str(), again.failure()->gate->name);
    return 0;
}
