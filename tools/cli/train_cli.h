// tools/cli/train_cli.h — `seekgrad train --config F [--steps N] [--device D]` and `seekgrad pipeline [--config F]
// [--device D]`:
// load a YAML config (train/config_yaml.h) and run the PRETRAIN stage (train/pretrain.h), which prints
// its progress, resumes from out_dir/checkpoint, and ends with the summary. Return process exit codes;
// errors are printed to stderr ("[config] configs/x.yaml: key 'model.dimm' is not a known key").
#pragma once
#include <string>

namespace sg {

// steps_override > 0 replaces train.steps (and the cosine schedule's length with it); a non-empty
// device_override ("cpu", "cuda") replaces train.device.
int run_train(const std::string& config_path, int steps_override = 0, const std::string& device_override = "");
// The main job (tools/cli/pipeline.h): DATA_PREP → PRETRAIN → SFT → GRPO → EXPORT with `config_path`
// ("" = configs/tiny.yaml), ending with the held-out accuracy table.
int run_pipeline(const std::string& config_path = "", const std::string& device_override = "");

}  // namespace sg
