// tools/cli/train_cli.cpp — see train_cli.h.
#include "tools/cli/train_cli.h"

#include <exception>
#include <iostream>

#include "train/config_yaml.h"
#include "train/pretrain.h"
#include "tools/cli/pipeline.h"

namespace sg {

int run_train(const std::string& config_path, int steps_override, const std::string& device_override) {
  try {
    PretrainConfig cfg = load_pretrain_config(config_path);
    if (!device_override.empty()) cfg.train.device = device_override;
    if (steps_override > 0) {
      cfg.train.steps = steps_override;
      if (cfg.train.warmup_steps >= steps_override) cfg.train.warmup_steps = steps_override / 10;
      if (cfg.train.dsa_warmup_steps >= steps_override) {  // keep a sparse stage: the same share as the lr warm-up
        const int64_t was = cfg.train.dsa_warmup_steps;
        cfg.train.dsa_warmup_steps = steps_override / 10;
        std::cout << "--steps " << steps_override << ": train.dsa_warmup_steps " << was << " -> "
                  << cfg.train.dsa_warmup_steps << " (the dense warm-up must end before the run does)\n";
      }
    }
    std::cout << "seekgrad train: " << config_path << " -> " << cfg.train.out_dir << "\n";
    PretrainResult r = pretrain(cfg, std::cout);
    if (r.start_step >= cfg.train.steps)
      std::cout << "already complete: " << cfg.train.out_dir << "/checkpoint is at step " << r.start_step
                << " (delete it, or raise train.steps, to train more)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

int run_pipeline(const std::string& config_path, const std::string& device_override) {
  const std::string path = config_path.empty() ? "configs/tiny.yaml" : config_path;
  std::cout << "seekgrad pipeline: " << path << (device_override.empty() ? "" : " --device " + device_override) << "\n";
  return run_reasoning_pipeline(path, std::cout, device_override);
}

}  // namespace sg
