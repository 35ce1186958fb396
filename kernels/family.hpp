// The interface every kernel family implements (one header per family,
// kernels/<family>.hpp, declares these four functions under its own prefix;
// engine/target.cpp lists the families):
//
//   std::string  <f>_unsupported(const Case&, Backend, Mutant)
//       empty when the family computes this case correctly on that backend
//       with that mutant built in; otherwise the reason (unsupported head
//       dim, q_len != 1 for decode, mutant not instantiated for this dtype...)
//   PrecisionProfile <f>_profile(const Case&, Backend)
//       how the variant rounds (see oracle/error_model.hpp)
//   Observation  <f>_cpu(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&)
//       the portable C++ twin: same tiles, same online softmax, same splits
//       and merge as the CUDA version, rounding where it rounds
//   Observation  <f>_cuda(const AttentionProblem&, Mutant, const std::optional<ProbeRequest>&)
//       only in builds with ATTNCHECK_HAVE_CUDA
//
// Both run functions throw UnsupportedCase if called on an unsupported case,
// poison their outputs before computing and check guard bands after.
#pragma once

#include <optional>
#include <string>

#include "engine/case.hpp"
#include "engine/mutant.hpp"
#include "engine/observation.hpp"
#include "engine/problem.hpp"
#include "engine/target.hpp"
#include "oracle/error_model.hpp"

#define ATTNCHECK_DECLARE_FAMILY(f)                                                                          \
    std::string f##_unsupported(const ::attncheck::Case& c, ::attncheck::Backend b, ::attncheck::Mutant m);   \
    ::attncheck::PrecisionProfile f##_profile(const ::attncheck::Case& c, ::attncheck::Backend b);            \
    ::attncheck::Observation f##_cpu(const ::attncheck::AttentionProblem& p, ::attncheck::Mutant m,           \
                                     const std::optional<::attncheck::ProbeRequest>& probe);                  \
    ::attncheck::Observation f##_cuda(const ::attncheck::AttentionProblem& p, ::attncheck::Mutant m,          \
                                      const std::optional<::attncheck::ProbeRequest>& probe);
