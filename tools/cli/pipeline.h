// tools/cli/pipeline.h — `seekgrad pipeline --config configs/tiny.yaml`, the README's main job: DeepSeek-R1's recipe
// at toy scale, end to end, on the project's own generated data.
//
//   DATA_PREP + PRETRAIN   train/pretrain.h: stories + worked arithmetic (train split) → BPE → the base model
//   EVAL                   held-out TEST-split problems, the same ones after every stage (train/reasoning_eval.h)
//   SFT                    train/sft.h: cold start on worked solutions in the chat template (if `sft:` is given)
//   EVAL
//   GRPO                   train/grpo.h: RL with the accuracy + format rewards (if `grpo:` is given)
//   EVAL
//   EXPORT                 the final model as a HuggingFace directory (tools/cli/commands.h export_hf_model)
//
// Every stage trains in its own directory (out_dir, out_dir/sft, out_dir/grpo) and resumes from its checkpoint;
// a stage that finished writes DIR/stage.json (its summary) last, and a rerun skips it. The evaluation of each
// stage is written as out_dir/eval_<stage>.jsonl (one JSON object per problem) and summarised in the table.
//
// How "GRPO beats SFT" is judged: both models answer the same problems with the same number of samples, so the
// difference is PAIRED: d_i = acc_GRPO(i) − acc_SFT(i) per problem, mean d ± its standard error std(d)/√n.
// The table prints the difference, its standard error and z = mean/stderr (|z| > 2: beyond the noise), for the
// sampled accuracy (K samples at reasoning.eval_temperature, R1's pass@1 protocol) and for one greedy answer each.
#pragma once
#include <iosfwd>
#include <string>

namespace sg {

// Returns the process exit code (1 on error, printed to stderr).
// device_override ("cpu", "cuda"; "" = the config's train.device): where every stage trains and evaluates.
int run_reasoning_pipeline(const std::string& config_path, std::ostream& out, const std::string& device_override = "");

}  // namespace sg
