// The example kernel as a plugin: `attncheck run --plugin libmy_kernel_plugin.so`
// checks it from the command line (both twins; --target picks one).
#include "my_kernel.hpp"

namespace {

std::vector<std::unique_ptr<attncheck::Target>> targets() {
    std::vector<std::unique_ptr<attncheck::Target>> v;
    v.push_back(std::make_unique<my_kernel::MyKernel>(false));
    v.push_back(std::make_unique<my_kernel::MyKernel>(true));
    return v;
}

} // namespace

ATTNCHECK_PLUGIN(targets)
