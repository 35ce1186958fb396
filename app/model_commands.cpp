#include <CLI/CLI.hpp>
namespace attncheck { void register_model_commands(CLI::App&) {} }
