// The fp64 instantiation of the model oracle (the template is in the header,
// so tests can also instantiate it with Boost cpp_bin_float_50).
#include "model/oracle/model_oracle.hpp"

namespace attncheck {

OracleTrace model_oracle_forward(const ModelWeights& w, const std::vector<int>& tokens) {
    return model_oracle_forward_t<double>(w, tokens);
}

} // namespace attncheck
