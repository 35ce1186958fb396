// Structure-aware mutations of a model case (model/model_case.hpp), for
// libFuzzer's custom mutator in fuzz/fuzz_model_step.cpp: one step moves one
// thing a model bug hides behind --
//   configuration: the GQA layout, head_dim, depth, widths, vocabulary,
//   RoPE theta, pairing and scaling, qkv bias, tied embeddings, eps, dtype;
//   weights: their seed, a massive-activation channel, a large Q/K bias;
//   schedule: a decode step, a prompt split into two chunks, a ragged call
//   (a new slot's prompt beside another slot's next token), a reset and a
//   fresh prompt, another attention family or split count for a call.
// The same layouts and dims as the model campaign's generator
// (model_campaign.hpp). Every result validates (validate(ModelCase)), keeps
// the case small enough for a CPU fuzzer, and gives each call an attention
// family that runs it (decode families only for one-token chunks,
// flash_prefill only at its head dims); a step that cannot make such a case
// leaves it unchanged.
#pragma once

#include "engine/case/rng.hpp"
#include "model/model_case.hpp"

namespace attncheck {

// The smallest case the fuzzer starts from when its input is not a model case.
ModelCase smallest_model_case();

// One to three mutation steps.
ModelCase mutate_model_case(const ModelCase& c, Rng& rng);

// The configuration and weights of one case with the schedule of the other,
// tokens folded into the vocabulary (libFuzzer's cross-over).
ModelCase cross_model_cases(const ModelCase& config_from, const ModelCase& schedule_from);

// Makes a case valid after a change: massive channels inside hidden, tokens
// inside the vocabulary, every call's family able to run it. False when it
// still does not validate.
bool fit_model_case(ModelCase& c);

} // namespace attncheck
