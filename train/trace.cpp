// train/trace.cpp — see trace.h.
#include "train/trace.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <stdexcept>

#include "autograd/runtime.h"
#include "autograd/trace_path.h"
#include "train/checkpoint.h"
#include "train/grpo.h"
#include "train/pretrain.h"
#include "train/sft.h"

namespace sg {
namespace fs = std::filesystem;

// A second model with the same weights (GRPO's frozen reference π_ref), made through a temporary model dir.
static Transformer load_model_dir_copy(Transformer& model) {
  const fs::path dir = fs::temp_directory_path() / ("seekgrad_trace_ref_" + std::to_string(::getpid()));
  save_model_dir(model, dir.string());
  Transformer copy = load_model_dir(dir.string());
  std::error_code ec;
  fs::remove_all(dir, ec);
  return copy;
}

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
  static const std::vector<std::string> names = {"pretrain", "sft", "grpo"};
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
                                            const PreparedData& data, const Transformer* reference) {
  check_stage_name(stage);
  const ReasoningConfig& rc = config.reasoning;
  const int level = (int)rc.level;
  if (stage == "pretrain") return std::make_unique<PretrainStage>(model, config.train, data);
  if (stage == "sft") {  // the SFT stage of run_sft: its examples, its packing, its loss (no eval problems needed)
    std::vector<data::ReasoningProblem> problems = sft_problems(rc, data::Split::train, config.sft.n_problems);
    return std::make_unique<SftStage>(model, data.tokenizer, config.sft, rc, make_sft_examples(data.tokenizer, problems, rc.system_prompt()),
                                      std::vector<data::SftTokens>{}, std::vector<data::ReasoningProblem>{}, config.train.seed + 11);
  }
  if (stage == "grpo") {  // the GRPO stage of run_grpo: one real rollout, then its loss
    if (!reference) throw std::logic_error("[trace] the grpo stage needs its reference model");
    std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, level);
    return std::make_unique<GrpoStage>(model, *reference, data.tokenizer, config.grpo, rc, std::move(pool),
                                       std::vector<data::ReasoningProblem>{}, config.train.seed + 21);
  }
  throw std::logic_error("[trace] stage '" + stage + "' is listed in trace_stage_names() but not built here");
}

TraceRun prepare_trace(const std::string& config_path, const std::string& stage, std::ostream& log,
                       bool from_checkpoint) {
  TraceRun run;
  run.config = load_pretrain_config(config_path);
  const TrainConfig& tc = run.config.train;
  if (tc.threads > 0) set_num_threads((int)tc.threads, ThreadsFrom::config);  // unless --threads / the env
  check_stage_name(stage);  // before preparing any data: the error should not wait for a BPE training
  fs::create_directories(tc.out_dir);
  run.data = std::make_unique<PreparedData>(prepare_or_open(tc, log));
  ModelArgs args = pretrain_model_args(run.config, *run.data);
  // SFT starts from the pretrained model and GRPO from SFT's (or the base, grpo.init: pretrain), as the pipeline
  // does; when that stage has not run yet, a freshly initialised model stands in (and is said so).
  std::string init_dir;
  if (stage == "sft") init_dir = (fs::path(tc.out_dir) / "model").string();
  if (stage == "grpo")
    init_dir = run.config.grpo.init == "pretrain" ? (fs::path(tc.out_dir) / "model").string()
               : run.config.sft.out_dir.empty()   ? (fs::path(tc.out_dir) / "sft" / "model").string()
                                                  : (fs::path(run.config.sft.out_dir) / "model").string();
  if (!init_dir.empty() && fs::is_regular_file(fs::path(init_dir) / "model.safetensors")) {
    run.model = std::make_unique<Transformer>(load_model_dir(init_dir, DType::f32, "dequant"));
    log << "model: " << init_dir << " (the model this stage starts from)\n";
  } else {
    Rng rng(tc.seed);
    run.model = std::make_unique<Transformer>(args, rng);
    if (!init_dir.empty())
      log << "model: " << init_dir << " does not exist yet, so a freshly initialised model stands in"
          << (stage == "grpo" ? " (its completions all earn the same reward, so every advantage — and the gradient — is 0; run the pipeline first)" : "")
          << "\n";
  }
  if (stage == "grpo") run.reference = std::make_unique<Transformer>(load_model_dir_copy(*run.model));
  run.stage = make_stage_for_trace(stage, *run.model, run.config, *run.data, run.reference.get());
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
