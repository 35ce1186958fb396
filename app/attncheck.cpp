// attncheck: the command-line front end. `attncheck --help` lists the
// subcommands; each lives in its own file under app/ (commands.hpp).
//
// Exit codes: 0 all good, 1 a check failed, 2 bad input (message on stderr),
// 3 `repro --expect-gate`: a gate other than the recorded one failed first.
#include <fmt/format.h>

#include "app/commands.hpp"
#include "engine/case/case.hpp"
#include "engine/timing/host_memory.hpp"
#include "model/model_case.hpp"

int main(int argc, char** argv) {
    using namespace attncheck;
    keep_freed_host_memory();
    CLI::App app{"attncheck: property tests and fuzzing for LLM attention"};
    app.require_subcommand(1);
    int rc = 0;
    register_oracle_commands(app, rc);
    register_property_commands(app, rc);
    register_model_commands(app);
    register_bench_commands(app, rc);
    register_campaign_command(app, rc);
    register_shrink_command(app, rc);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e); // prints help or the parse error
        return code == 0 ? 0 : 2;
    } catch (const CaseError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 2;
    } catch (const ModelCaseError& e) { // a malformed model case file
        fmt::print(stderr, "error: {}\n", e.what());
        return 2;
    } catch (const ConfigError& e) { // a model case's configuration
        fmt::print(stderr, "error: {}\n", e.what());
        return 2;
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return rc;
}
