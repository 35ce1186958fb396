// The model campaign: random model cases (model/model_case.hpp) -- random
// architectures, GQA ratios, head dims, depths, widths, dtypes, RoPE
// pairings, outliers and session schedules -- checked by the model's gates
// (model/model_case_check.hpp), a failure shrunk by RapidCheck (fewer layers,
// smaller dims, shorter schedules, smaller ratios come first in every draw)
// and written as a model case file that `attncheck repro` replays.
// `attncheck run --target model` runs it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <rapidcheck.h>

#include "model/model_case_check.hpp"

namespace attncheck {

rc::Gen<ModelCase> gen_model_case();

// What the generator draws from (and the model case mutator moves among):
// the head layouts (n_q, n_kv) the issue names and the head dims, smallest
// first.
const std::vector<std::pair<int, int>>& model_head_layouts();
const std::vector<int>& model_head_dims();

struct ModelRunSpec {
    Backend backend = Backend::cpu;
    ModelMutant mutant = ModelMutant::none;
    long long cases = 100;
    double seconds = 0; // > 0: stop after this long
    std::uint64_t seed = 1;
    std::string out_dir = "attncheck-counterexamples";
    // A model adapter command (external_model.hpp): its model, judged on
    // logits (external_model_check.hpp), instead of ours.
    std::string external;
};

struct ModelFailure {
    ModelCase shrunk;
    ModelVerdict verdict;
    int shrink_steps = 0;
    std::string file; // the counterexample written
};

struct ModelRunReport {
    long long cases = 0;
    long long skipped = 0; // cases an external model refused
    std::string last_skip; // and why, the latest
    std::string target;    // "model" or the external adapter's name
    double seconds = 0;
    std::optional<ModelFailure> failure;
};

ModelRunReport run_model_campaign(const ModelRunSpec& spec);

// The model case file of a failure: the case plus what failed where.
std::string model_counterexample_json(const ModelFailure& f, const ModelRunSpec& spec);
// Writes it to spec.out_dir/model-<mutant>-<gate>-<hash>.json; returns the path.
std::string save_model_counterexample(const ModelFailure& f, const ModelRunSpec& spec);

} // namespace attncheck
