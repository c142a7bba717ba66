// train/trace.cpp — see trace.h.
#include "train/trace.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <stdexcept>

#include "autograd/runtime.h"
#include "autograd/trace_path.h"
#include "train/checkpoint.h"
#include "train/pretrain.h"

namespace sg {
namespace fs = std::filesystem;

int run_trace(Module& model, Stage& stage, const std::string& param_name, std::ostream& out,
              const std::string& dot_path, int64_t step) {
  NamedParameters params = model.named_parameters();
  Tensor* param = nullptr;
  std::vector<std::string> all_names;
  for (auto& [name, t] : params) {
    all_names.push_back(name);
    if (name == param_name) param = t;
  }
  if (!param) {
    std::string msg = "[trace] the model has no parameter '" + param_name + "' (" + std::to_string(params.size()) +
                      " parameters); closest names:";
    for (const std::string& n : closest_names(param_name, all_names)) msg += (msg.back() == ':' ? " " : ", ") + n;
    throw std::runtime_error(msg);
  }
  for (auto& [name, t] : params) t->zero_grad();  // as a training step starts

  stage.make_batch(step);
  BatchLoss bl = stage.batch_loss(step);
  const Tensor& loss = bl.total;
  out << "trace: stage " << stage.name() << ", step " << step << ", one micro-batch of " << stage.tokens_per_batch()
      << " tokens\n  loss " << std::setprecision(6) << (loss.defined() ? loss.item() : NAN);
  const std::vector<std::string> terms = stage.loss_terms();
  for (size_t i = 0; i < terms.size() && i < bl.terms.size(); i++) out << (i ? ", " : " (") << terms[i] << " " << bl.terms[i];
  if (!terms.empty() && !bl.terms.empty()) out << ")";
  out << std::defaultfloat << "\n";
  if (!dot_path.empty()) {  // before backward: it frees the tape
    std::ofstream f(dot_path);
    if (!f) throw std::runtime_error("[trace] cannot write " + dot_path);
    f << gradient_path_to_dot(loss, find_gradient_path(loss, *param));
    out << "  tape as Graphviz (path in red): " << dot_path << "\n";
  }
  GradientPath path = gradient_path(loss, *param, params);
  out << format_gradient_path(path);
  return 0;
}

// The stages make_stage_for_trace can build ("sft", "grpo": add their names here and their constructors below).
const std::vector<std::string>& trace_stage_names() {
  static const std::vector<std::string> names = {"pretrain"};
  return names;
}

static void check_stage_name(const std::string& stage) {
  for (const std::string& n : trace_stage_names())
    if (n == stage) return;
  std::string known;
  for (const std::string& n : trace_stage_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::runtime_error("[trace] unknown stage '" + stage + "' (known: " + known + ")");
}

std::unique_ptr<Stage> make_stage_for_trace(const std::string& stage, Transformer& model, const PretrainConfig& config,
                                            const PreparedData& data) {
  check_stage_name(stage);
  if (stage == "pretrain") return std::make_unique<PretrainStage>(model, config.train, data);
  // "sft" and "grpo": construct their Stage here, from the same config (and whatever they add to it).
  throw std::logic_error("[trace] stage '" + stage + "' is listed in trace_stage_names() but not built here");
}

TraceRun prepare_trace(const std::string& config_path, const std::string& stage, std::ostream& log,
                       bool from_checkpoint) {
  TraceRun run;
  run.config = load_pretrain_config(config_path);
  const TrainConfig& tc = run.config.train;
  set_num_threads((int)tc.threads);
  check_stage_name(stage);  // before preparing any data: the error should not wait for a BPE training
  fs::create_directories(tc.out_dir);
  run.data = std::make_unique<PreparedData>(prepare_or_open(tc, log));
  ModelArgs args = pretrain_model_args(run.config, *run.data);
  Rng rng(tc.seed);
  run.model = std::make_unique<Transformer>(args, rng);
  run.stage = make_stage_for_trace(stage, *run.model, run.config, *run.data);
  if (from_checkpoint) {
    const std::string dir = (fs::path(tc.out_dir) / "checkpoint").string();
    if (!checkpoint_exists(dir)) throw std::runtime_error("[trace] --checkpoint: " + dir + " does not exist (train first)");
    TrainerState state;
    load_checkpoint(dir, *run.model, nullptr, state);
    run.stage->load_state(state);
    run.step = state.step;
    log << "checkpoint: " << dir << " at step " << state.step << "\n";
  }
  return run;
}

}  // namespace sg
