// attncheck for your own attention kernel: the one header an outside project
// includes after find_package(attncheck) and linking attncheck::attncheck.
//
//   1. Implement a Target (engine/targets/target.hpp): name, what it
//      supports (unsupported() returns the reason for a case it cannot run,
//      so it is skipped, never judged), its precision profile (where it
//      rounds: the error model's tolerance is derived from it), and run(),
//      which computes O and LSE for an AttentionProblem (the materialized
//      Case: packed varlen Q/K/V as float values exact in the case's dtype).
//   2. Check it: run_campaign (properties/campaign/campaign.hpp) draws cases
//      from the weighted distribution, runs every gate on each and shrinks
//      the first failure; check_case runs the gates on one case (a repro);
//      save_counterexample / load_counterexample write and read the files
//      `attncheck repro` replays.
//
// examples/own_kernel/ is a complete project: a naive kernel that passes and
// the same kernel with the softmax scale applied twice, which is caught.
#pragma once

#include "engine/case/case.hpp"
#include "engine/case/problem.hpp"
#include "engine/targets/target.hpp"
#include "kernels/registry.hpp"
#include "properties/campaign/campaign.hpp"
#include "properties/campaign/counterexample.hpp"
#include "properties/campaign/mutation_score.hpp"
#include "properties/gates/case_check.hpp"
