// train/trace.h — `seekgrad trace`: ONE training step's forward + backward of any stage, and the path its
// gradient takes from the loss to one named parameter (autograd/trace_path.h), printed node by node.
//
//   run_trace            stage-agnostic: make_batch(step), batch_loss(step).total, gradient_path, print
//   make_stage_for_trace the stages it knows by name — "pretrain", "sft", "grpo" (the pipeline's stages)
//   TraceRun             everything a stage needs, built from a YAML config the way `seekgrad train` builds it
//                        (train/pretrain.h: the same data preparation into out_dir/data, the same model init)
//
// What this is not: a training run. No optimizer step, no metrics.csv, no checkpoint is written; the model's
// .grad are left as the one backward sweep made them.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "models/module.h"
#include "models/transformer.h"
#include "train/config_yaml.h"
#include "train/data_prep.h"
#include "train/trainer.h"

namespace sg {

// Resolves param_name in model.named_parameters() (unknown: "[trace] ..." listing the closest names), zeroes
// every parameter's .grad, draws the stage's batch of `step` (0-based), builds its loss on the tape, and prints
// to `out`: the stage, the step, the loss and its terms, then format_gradient_path. dot_path non-empty: the
// whole tape as Graphviz DOT with the path in red. Returns 0; errors (unknown parameter, a parameter the loss
// does not reach) are thrown.
int run_trace(Module& model, Stage& stage, const std::string& param_name, std::ostream& out,
              const std::string& dot_path = "", int64_t step = 0);

// The pieces a stage is built from, kept alive together (a Stage holds references to them).
struct TraceRun {
  PretrainConfig config;
  std::unique_ptr<PreparedData> data;   // the config's data, prepared (or reused) as training does
  std::unique_ptr<Transformer> model;   // pretrain: initialised as training does (train.seed); sft / grpo: the model
                                        // the stage starts from when it exists (out_dir/model, out_dir/sft/model)
  std::unique_ptr<Transformer> reference;  // grpo: the frozen π_ref (a copy of model)
  std::unique_ptr<Stage> stage;
  int64_t step = 0;                     // the step to trace (a restored checkpoint's step, else 0)
};

// The stages make_stage_for_trace knows: {"pretrain", "sft", "grpo"}.
const std::vector<std::string>& trace_stage_names();
// The stage called `stage` over model/config/data. Throws "[trace] unknown stage 'x' (known: pretrain)".
// reference: GRPO's frozen π_ref (required for "grpo", unused otherwise).
std::unique_ptr<Stage> make_stage_for_trace(const std::string& stage, Transformer& model, const PretrainConfig& config,
                                            const PreparedData& data, const Transformer* reference = nullptr);

// Loads config_path, prepares its data (log: what train prints about it), builds the model and the stage.
// from_checkpoint: load out_dir/checkpoint's parameters, buffers and the stage's data position first, so the
// traced step is the run's next one (throws when there is no checkpoint).
TraceRun prepare_trace(const std::string& config_path, const std::string& stage, std::ostream& log,
                       bool from_checkpoint = false);

}  // namespace sg
