// train/pretrain.cpp — see pretrain.h. The stage reads top to bottom: prepare_data, build, restore,
// the step loop, finish. Everything random comes from seeded Rngs (model init: train.seed; the loader:
// train.seed + 1; validation batches: a fixed seed), so a run is reproducible and resumable.
#include "train/pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "data/generators.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "autograd/runtime.h"
#include "ops/cpu/runtime.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/data_prep.h"
#include "train/evaluate.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/trainer.h"
#include "train/schedule.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kValSeed = 0x5eed0fa1ULL;  // validation batches: the same ones at every evaluation

// The DATA_PREP options a training config asks for (train/data_prep.h): the generated story corpus (seeded
// by train.seed) or a text file, the BPE vocabulary, 5 % held out for validation.
PrepareOptions prepare_options(const TrainConfig& tc) {
  PrepareOptions o;
  if (tc.data.source == "generated") {
    o.generated_stories = tc.data.n_stories;
    o.seed = tc.seed;
  } else {
    o.text_paths = {tc.data.text_path};
  }
  o.arithmetic_problems = tc.data.arithmetic_problems;
  o.arithmetic_level = (int)tc.data.arithmetic_level;
  o.arithmetic_solution = tc.data.arithmetic_solution;
  o.seed = tc.seed;
  o.vocab_size = (int)tc.data.vocab_size;
  o.max_bytes = tc.data.max_text_bytes;
  o.val_fraction = 0.05;
  o.out_dir = (fs::path(tc.out_dir) / "data").string();
  return o;
}

// A loader batch [B*(T+1)] -> tokens [B,T] and targets [B,T] (the next tokens), i64.
void to_tensors(const std::vector<int32_t>& batch, int64_t B, int64_t T, Tensor& tokens, Tensor& targets) {
  std::vector<int64_t> x((size_t)(B * T)), y((size_t)(B * T));
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      x[b * T + t] = batch[b * (T + 1) + t];
      y[b * T + t] = batch[b * (T + 1) + t + 1];
    }
  tokens = Tensor::from_vector(x, {B, T});
  targets = Tensor::from_vector(y, {B, T});
}

// max_i load_i / mean load, averaged over the MoE blocks (1 = perfectly balanced); NaN without MoE.
void load_balance(const std::vector<std::vector<int64_t>>& loads, double& max_over_mean, double& max_load) {
  double acc = 0, mx = 0;
  int n = 0;
  for (auto& l : loads) {
    if (l.empty()) continue;
    double sum = 0, m = 0;
    for (int64_t v : l) sum += (double)v, m = std::max(m, (double)v);
    double mean = sum / (double)l.size();
    if (mean > 0) acc += m / mean, n++;
    mx = std::max(mx, m);
  }
  max_over_mean = n ? acc / n : NAN;
  max_load = n ? mx : NAN;
}

}  // namespace


// DATA_PREP: train.data.dir when given (a `seekgrad prepare` output), else out_dir/data — reused when its
// prepare.json says it was made with the same options, (re)made otherwise.
PreparedData prepare_or_open(const TrainConfig& tc, std::ostream& log) {
  if (!tc.data.dir.empty()) {
    PreparedData d = open_prepared(tc.data.dir);
    log << "data: " << tc.data.dir << " (" << d.train_tokens << " train + " << d.val_tokens << " val tokens, vocab "
        << d.tokenizer.vocab_size() << ")\n";
    return d;
  }
  PrepareOptions o = prepare_options(tc);
  if (prepared_matches(o.out_dir, prepare_signature(o))) {
    PreparedData d = open_prepared(o.out_dir);
    log << "data: reusing " << o.out_dir << " (" << d.train_tokens << " train + " << d.val_tokens << " val tokens, vocab "
        << d.tokenizer.vocab_size() << ")\n";
    return d;
  }
  log << "data: preparing " << o.out_dir << "\n";
  PrepareResult r = prepare_data(o, &log);
  log << "data: " << r.n_train_tokens << " train + " << r.n_val_tokens << " val tokens, vocab " << r.vocab_size << " ("
      << std::fixed << std::setprecision(2) << r.bytes_per_token << " bytes/token) in " << std::setprecision(1) << r.seconds
      << " s\n" << std::defaultfloat;
  return open_prepared(o.out_dir);
}

ModelArgs pretrain_model_args(const PretrainConfig& config, const PreparedData& data) {
  ModelArgs args = config.model;
  args.vocab_size = data.tokenizer.vocab_size();
  args.validate(config.source);
  return args;
}

// ---- PretrainStage ----------------------------------------------------------------------------------

PretrainStage::PretrainStage(Transformer& model, const TrainConfig& tc, const PreparedData& data)
    : model_(model), tc_(tc), data_(data), loader_(data.train_shards, {tc.batch_size, tc.seq_len, tc.seed + 1, false}) {}

int64_t PretrainStage::tokens_per_batch() const { return tc_.batch_size * tc_.seq_len; }

bool PretrainStage::has_dsa() const { return model_.args.index_topk > 0; }

DSAStage PretrainStage::dsa_stage(int64_t step) const {
  return step < tc_.dsa_warmup_steps ? DSAStage::dense_warmup : DSAStage::sparse;
}

std::vector<std::string> PretrainStage::loss_terms() const {
  std::vector<std::string> t = {"main", "mtp", "balance"};
  if (has_dsa()) t.push_back("indexer_kl");
  return t;
}

std::vector<std::string> PretrainStage::step_metrics() const {
  std::vector<std::string> m = {"max_load", "max_over_mean_load"};
  if (has_dsa()) m.insert(m.end(), {"dsa_stage", "indexer_recall"});
  return m;
}

std::vector<std::string> PretrainStage::eval_metrics() const {
  std::vector<std::string> m = {"val_loss"};
  if (has_dsa()) m.push_back("val_indexer_recall");
  return m;
}

void PretrainStage::make_batch(int64_t step) {
  if (step != loads_step_) {  // a new optimizer step: its load starts at zero
    step_loads_.clear();
    loads_step_ = step;
    step_recall_ = 0;
    step_micro_ = 0;
  }
  to_tensors(loader_.next_batch(), tc_.batch_size, tc_.seq_len, tokens_, targets_);
}

BatchLoss PretrainStage::batch_loss(int64_t step) {
  LossOptions lopt;
  lopt.mtp_lambda = tc_.mtp_lambda;
  lopt.balance_alpha = tc_.balance_alpha;
  if (has_dsa()) {
    lopt.train.dsa = true;
    lopt.train.dsa_stage = dsa_stage(step);
    lopt.train.measure_recall = true;
  }
  LossOutput lo = model_.loss(tokens_, targets_, lopt);
  add_expert_loads(step_loads_, lo.expert_loads);
  double mtp = 0;
  for (auto& l : lo.mtp_losses) mtp += l.item();
  if (!lo.mtp_losses.empty()) mtp /= (double)lo.mtp_losses.size();
  BatchLoss out{lo.loss, {lo.main_loss.item(), mtp, lo.balance_loss.defined() ? lo.balance_loss.item() : 0.0}};
  if (has_dsa()) {
    // warm-up: only the indexer trains (the LM terms are logged, not back-propagated: the model is frozen);
    // sparse: the LM loss trains the model, the indexer KL (detached input) trains the indexer.
    Tensor indexer = mul(lo.indexer_loss, tc_.indexer_loss_weight);
    out.total = dsa_stage(step) == DSAStage::dense_warmup ? indexer : add(lo.loss, indexer);
    out.terms.push_back(lo.indexer_loss.item());
    step_recall_ += lo.indexer_recall;
    step_micro_++;
  }
  return out;
}

void PretrainStage::update_biases() {
  if (has_dsa() && dsa_stage(loads_step_) == DSAStage::dense_warmup) return;  // the model is frozen
  if (tc_.bias_gamma > 0 && !step_loads_.empty()) model_.update_gate_biases(step_loads_, tc_.bias_gamma);
}

std::vector<double> PretrainStage::step_metric_values() {
  double max_over_mean = NAN, max_load = NAN;
  load_balance(step_loads_, max_over_mean, max_load);
  last_step_loads_ = step_loads_;
  std::vector<double> v = {max_load, max_over_mean};
  if (has_dsa()) {
    v.push_back(dsa_stage(loads_step_) == DSAStage::dense_warmup ? 0.0 : 1.0);
    v.push_back(step_micro_ ? step_recall_ / (double)step_micro_ : NAN);
  }
  return v;
}

std::vector<double> PretrainStage::evaluate(int64_t step) {
  (void)step;
  EvalOptions eo;
  eo.batches = tc_.eval_batches;
  eo.batch_size = tc_.batch_size;
  eo.seq_len = tc_.seq_len;
  eo.seed = kValSeed;
  EvalResult r = evaluate_lm(model_, data_.val_shards, eo);
  if (has_dsa()) return {r.loss, r.indexer_recall};
  return {r.loss};
}

void PretrainStage::save_state(TrainerState& state) const { state.loader = loader_.state(); }
void PretrainStage::load_state(const TrainerState& state) {
  if (state.loader) loader_.restore(*state.loader);
}

PretrainResult pretrain(const PretrainConfig& config, std::ostream& log, const PretrainOptions& options) {
  const auto t_start = std::chrono::steady_clock::now();
  const TrainConfig& tc = config.train;
  const Device device = parse_device(tc.device, config.source + ": train.device");  // before any work: fail fast
  if (tc.threads > 0) set_num_threads((int)tc.threads, ThreadsFrom::config);  // unless --threads / the env
  fs::create_directories(tc.out_dir);
  PretrainResult res;
  res.out_dir = tc.out_dir;

  // ---- DATA_PREP ----
  PreparedData data = prepare_or_open(tc, log);
  res.train_tokens = data.train_tokens;
  res.val_tokens = data.val_tokens;

  // ---- MODEL ----
  ModelArgs args = pretrain_model_args(config, data);
  Rng rng(tc.seed);
  Transformer model(args, rng);  // initialised on the host (the same numbers on every device), then moved
  model.to(device);
  res.vocab_size = args.vocab_size;
  res.n_parameters = model.num_parameters();
  res.ln_vocab = std::log((double)args.vocab_size);

  // ---- THE TRAINER ----
  TrainerConfig trc;
  trc.steps = tc.steps;
  trc.grad_accum = tc.grad_accum;
  trc.grad_clip = tc.grad_clip;
  trc.adamw.lr = tc.lr;
  trc.adamw.weight_decay = tc.weight_decay;
  trc.adamw.moment_dtype = tc.moments == "bf16" ? DType::bf16 : DType::f32;
  trc.eval_every = tc.eval_every;
  trc.checkpoint_every = tc.checkpoint_every;
  trc.out_dir = tc.out_dir;
  trc.run_name = config.name;
  trc.progress = options.progress;
  trc.stop_after_step = options.stop_after_step;
  trc.identity = checkpoint_identity(args, &data.tokenizer);  // resume refuses another model's or tokenizer's checkpoint
  LrSchedule schedule = LrSchedule::warmup_cosine(tc.lr, tc.min_lr, tc.warmup_steps, tc.steps);
  PretrainStage stage(model, tc, data);
  Trainer trainer(model, stage, trc, schedule, rng, log);
  trainer.hooks.after_optimizer_step.push_back([&](const StepInfo&) { stage.update_biases(); });
  log << "model: " << res.n_parameters << " parameters, " << args.n_layers << " layers (" << args.n_dense_layers
      << " dense), dim " << args.dim << ", " << args.n_routed_experts << "+" << args.n_shared_experts << " experts top-"
      << args.n_activated_experts << ", MTP " << args.n_mtp_modules << ", vocab " << args.vocab_size
      << " (ln V = " << std::setprecision(4) << res.ln_vocab << ")\n"
      << "train: " << tc.steps << " steps x " << tc.grad_accum << " x " << tc.batch_size << " x " << tc.seq_len
      << " tokens, " << schedule.describe() << ", " << num_threads() << " threads (" << threads_from_name(num_threads_from()) << "), device " << describe_device(device)
      << "\n";

  // ---- LOOP (resumes from out_dir/checkpoint when there is one) ----
  TrainerResult tr = trainer.run();
  res.start_step = tr.start_step;
  res.steps_done = tr.steps_done;
  res.first_loss = tr.first_loss;
  res.final_loss = tr.final_loss;
  res.final_main_loss = tr.final_terms.empty() ? NAN : tr.final_terms[0];
  res.final_val_loss = tr.final_eval.empty() ? NAN : tr.final_eval[0];
  res.tokens_per_s = tr.tokens_per_s;
  const int64_t tokens_per_step = tc.grad_accum * tc.batch_size * tc.seq_len;

  // ---- END ----
  const bool finished = tr.finished;
  if (finished && options.export_model) {
    plot_loss_curves(trainer.metrics_path(), (fs::path(tc.out_dir) / "loss.png").string(),
                     "pretrain loss (" + config.name + ")", res.ln_vocab, "ln(V) chance");
    MetricsTable mt = read_metrics_csv(trainer.metrics_path());
    write_line_plot_png((fs::path(tc.out_dir) / "lr.png").string(),
                        {{"lr", mt.column("step"), mt.column("lr"), colors::green}},
                        "learning rate (" + schedule.describe() + ")");
    const auto& loads = stage.last_step_loads();
    if (!loads.empty() && !loads[0].empty()) {
      std::vector<double> l0(loads[0].begin(), loads[0].end());
      double mean = 0;
      for (double v : l0) mean += v / (double)l0.size();
      BarChartOptions bo;
      bo.title = "tokens per expert, " + model.moe_layer_names()[0] + ", step " + std::to_string(res.steps_done) +
                 (tc.grad_accum > 1 ? " (all " + std::to_string(tc.grad_accum) + " micro-batches)" : std::string(" (its batch)"));
      bo.x_label = "expert";
      bo.y_label = "tokens";
      bo.reference = ReferenceLine{mean, "mean"};
      write_bar_chart_png((fs::path(tc.out_dir) / "expert_load.png").string(), l0, bo);
    }
    save_model_dir(model, (fs::path(tc.out_dir) / "model").string());
  }
  if (finished && options.samples && tc.sample_tokens > 0) {
    std::vector<int32_t> p32 = data.tokenizer.encode("Once upon a time");
    std::vector<int64_t> prompt(p32.begin(), p32.end());
    int64_t n = std::min<int64_t>(tc.sample_tokens, args.max_seq_len - (int64_t)prompt.size());
    int64_t eot = data.tokenizer.find_token("<|endoftext|>").value_or(-1);
    NoGradGuard no_grad;
    for (int i = 0; i < 3 && n > 0; i++) {
      SamplingConfig sc;
      sc.temperature = i == 0 ? 0.0 : 0.8;
      sc.top_k = i == 0 ? 0 : 40;
      sc.seed = tc.seed + (uint64_t)i;
      std::vector<int64_t> ids = generate(model, prompt, n, sc, eot);
      std::vector<int32_t> all(p32.begin(), p32.end());
      for (int64_t t : ids) all.push_back((int32_t)t);
      res.samples.push_back(data.tokenizer.decode(all));
    }
  }
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  if (finished) {
    log << std::defaultfloat << std::setprecision(4) << "\n== pretrain summary (" << config.name << ") ==\n"
        << "steps " << res.steps_done << " (" << (res.steps_done - res.start_step) << " this run), "
        << res.steps_done * tokens_per_step << " tokens of " << res.train_tokens << " in the train split\n"
        << "final train loss " << res.final_loss << " (main CE " << res.final_main_loss << "), val CE "
        << res.final_val_loss << "  vs  ln V = " << res.ln_vocab << " (chance)\n"
        << std::setprecision(4) << "throughput " << std::fixed << std::setprecision(0) << res.tokens_per_s
        << " tokens/s, wall " << std::setprecision(1) << res.wall_s << " s\n" << std::defaultfloat;
    for (size_t i = 0; i < res.samples.size(); i++)
      log << (i == 0 ? "sample (greedy): " : "sample (T=0.8, top-40): ") << data::escape_bytes(res.samples[i]) << "\n";
    log << "files: " << tc.out_dir << "/{metrics.csv, loss.png, lr.png, expert_load.png, checkpoint/, model/}\n";
  }
  return res;
}

}  // namespace sg
