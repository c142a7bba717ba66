// train/trainer.cpp — see trainer.h. run() is the loop; train_step() is one optimizer step, written in
// the order trainer.h lists it.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/plot.h"
#include "train/progress.h"

namespace sg {
namespace fs = std::filesystem;

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error("[trainer] " + message); }
}  // namespace

Trainer::Trainer(Module& model, Stage& stage, TrainerConfig config, LrSchedule schedule, Rng rng, std::ostream& log)
    : model_(model), stage_(stage), config_(std::move(config)), schedule_(schedule), rng_(rng), log_(log) {
  if (config_.steps <= 0) fail("steps must be > 0, got " + std::to_string(config_.steps));
  if (config_.grad_accum <= 0) fail("grad_accum must be > 0, got " + std::to_string(config_.grad_accum));
  if (config_.out_dir.empty()) fail("no out_dir");
  params_ = model_.named_parameters();
  state_tensors_ = model_.named_parameters_and_buffers();
  optimizer_ = std::make_unique<AdamW>(params_, config_.adamw);
}

std::string Trainer::checkpoint_dir() const { return (fs::path(config_.out_dir) / "checkpoint").string(); }
std::string Trainer::metrics_path() const { return (fs::path(config_.out_dir) / "metrics.csv").string(); }

std::vector<std::string> Trainer::metric_columns() const {
  std::vector<std::string> c = {"step", "lr", "loss"};
  for (const std::string& t : stage_.loss_terms()) c.push_back(t + "_loss");
  c.push_back("grad_norm");
  c.push_back("tokens_per_s");
  for (const std::string& m : stage_.step_metrics()) c.push_back(m);
  for (const std::string& m : stage_.eval_metrics()) c.push_back(m);
  return c;
}

int64_t Trainer::resume() {
  if (resumed_) return state_.step;
  resumed_ = true;
  if (!checkpoint_exists(checkpoint_dir())) {
    refuse_to_start_over();
    return 0;
  }
  load_checkpoint(checkpoint_dir(), state_tensors_, optimizer_.get(), state_, config_.identity);
  last_saved_step_ = state_.step;
  rng_.set_state(state_.rng);
  stage_.load_state(state_);
  log_ << "resume: " << checkpoint_dir() << " at step " << state_.step << " (" << state_.tokens_seen << " tokens seen)\n";
  return state_.step;
}

void Trainer::save() {
  state_.rng = rng_.state();
  state_.config_name = config_.run_name;
  for (auto& h : hooks.at_checkpoint) h(state_);
  stage_.save_state(state_);
  save_checkpoint(checkpoint_dir(), state_tensors_, optimizer_.get(), state_, config_.identity);
  last_saved_step_ = state_.step;
}

// No checkpoint to resume from. A fresh start would cut metrics.csv back to its header and write a new checkpoint
// over whatever sits in checkpoint/: if either holds something (steps logged by an earlier run, a checkpoint
// directory without its trainer_state.json — incomplete or not ours), refuse and say how to start fresh.
void Trainer::refuse_to_start_over() const {
  const fs::path ckpt = checkpoint_dir();
  std::error_code ec;
  if (fs::exists(ckpt, ec) && !(fs::is_directory(ckpt, ec) && fs::is_empty(ckpt, ec)))
    fail(stage_.name() + ": " + ckpt.string() + " exists but is not a complete checkpoint (no trainer_state.json): " +
         "an interrupted copy or another program's files. Refusing to start over it; move it away (or set another " +
         "out_dir) to start fresh");
  if (fs::exists(metrics_path(), ec)) {
    const MetricsTable logged = read_metrics_csv(metrics_path());
    if (!logged.rows.empty())
      fail(stage_.name() + ": " + metrics_path() + " holds " + std::to_string(logged.rows.size()) +
           " logged steps, but there is no checkpoint to resume them from (" + ckpt.string() + "). Refusing to " +
           "start over and overwrite them; move metrics.csv away (or set another out_dir) to start fresh");
  }
}

StepInfo Trainer::train_step() {
  if (!grad_enabled())
    fail(stage_.name() + ": gradients are off (a NoGradGuard is active around the training loop), so nothing "
         "would train; end the NoGradGuard's scope before Trainer::run");
  const int64_t step = state_.step;  // 0-based index of the step in progress
  StepInfo info;
  info.step = step + 1;
  info.lr = schedule_.lr_at(step);
  info.grad_norm = NAN;
  const size_t n_terms = stage_.loss_terms().size();
  info.terms.assign(n_terms, 0.0);
  const double inv = 1.0 / (double)config_.grad_accum;

  zero_grad(params_);
  for (int64_t micro = 0; micro < config_.grad_accum; micro++) {
    stage_.make_batch(step);
    BatchLoss bl = stage_.batch_loss(step);
    if (bl.terms.size() != n_terms)
      fail(stage_.name() + " returned " + std::to_string(bl.terms.size()) + " loss terms, its loss_terms() names " +
           std::to_string(n_terms));
    if (bl.total.requires_grad()) (config_.grad_accum > 1 ? mul(bl.total, inv) : bl.total).backward();
    info.loss += bl.total.item() * inv;
    for (size_t i = 0; i < n_terms; i++) info.terms[i] += bl.terms[i] * inv;
  }
  for (auto& h : hooks.after_backward) h(info);

  info.grad_norm = config_.grad_clip > 0 ? clip_grad_norm(params_, config_.grad_clip) : grad_norm(params_);
  if (!std::isfinite(info.grad_norm) || !std::isfinite(info.loss)) {
    // Nothing is saved: the parameters that gave this loss may be the exploded ones (a step before blew them up),
    // and they must never replace the last good checkpoint. The run resumes from that checkpoint when rerun.
    const bool have = checkpoint_exists(checkpoint_dir());
    // Without a checkpoint every row of metrics.csv is this run's: it is moved aside (kept, not in the way of the
    // fresh start a rerun makes, which refuses a metrics.csv with rows it cannot resume).
    std::string kept_metrics;
    std::error_code ec;
    if (!have && fs::exists(metrics_path(), ec)) {
      kept_metrics = (fs::path(config_.out_dir) / ("metrics.nonfinite-step" + std::to_string(step + 1) + ".csv")).string();
      fs::rename(metrics_path(), kept_metrics, ec);
      if (ec) kept_metrics.clear();
    }
    throw std::runtime_error(
        "[" + stage_.name() + "] step " + std::to_string(step + 1) + ": non-finite loss " + format_number(info.loss) +
        " or gradient norm " + format_number(info.grad_norm) + "; nothing was saved: " +
        (have ? "the last good checkpoint is kept (" + checkpoint_dir() + ", step " +
                    std::to_string(last_saved_step_) + "), and a rerun resumes from it"
              : "there is no checkpoint yet, so a rerun starts from step 0" +
                    (kept_metrics.empty() ? std::string() : " (this run's metrics.csv was moved to " + kept_metrics + ")")) +
        ". Lower the learning rate or raise the warm-up (train.lr, train.warmup_steps) and run again");
  }
  optimizer_->step(info.lr);
  state_.step = step + 1;
  state_.tokens_seen += config_.grad_accum * stage_.tokens_per_batch();
  for (auto& h : hooks.after_optimizer_step) h(info);
  return info;
}

TrainerResult Trainer::run() {
  TrainerResult res;
  res.start_step = resume();
  MetricsLogger metrics(metrics_path(), metric_columns());
  metrics.truncate_after((double)state_.step);  // drop rows logged after the checkpoint (or a stale run's)

  ProgressBar bar(config_.steps, stage_.name(), std::max<int64_t>(1, config_.steps / 20));
  const size_t n_eval = stage_.eval_metrics().size();
  const int64_t tokens_per_step = config_.grad_accum * stage_.tokens_per_batch();
  int64_t steps_this_call = 0;
  res.final_eval.assign(n_eval, NAN);
  for (int64_t step = state_.step; step < config_.steps; step++) {
    const auto t0 = Clock::now();
    StepInfo info = train_step();
    std::vector<double> step_values = stage_.step_metric_values();
    const double dt = seconds_since(t0);
    res.train_seconds += dt;
    steps_this_call++;

    std::vector<double> eval(n_eval, NAN);
    if ((config_.eval_every > 0 && info.step % config_.eval_every == 0) || info.step == config_.steps) {
      eval = stage_.evaluate(info.step);
      if (eval.size() != n_eval)
        fail(stage_.name() + " evaluate() returned " + std::to_string(eval.size()) + " values for " +
             std::to_string(n_eval) + " eval metrics");
      for (auto& h : hooks.at_eval) h(info, eval);
      res.final_eval = eval;
    }
    std::vector<double> row = {(double)info.step, info.lr, info.loss};
    row.insert(row.end(), info.terms.begin(), info.terms.end());
    row.push_back(info.grad_norm);
    row.push_back((double)tokens_per_step / dt);
    row.insert(row.end(), step_values.begin(), step_values.end());
    row.insert(row.end(), eval.begin(), eval.end());
    metrics.log(row);

    if (steps_this_call == 1) res.first_loss = info.loss;
    res.final_loss = info.loss;
    res.final_terms = info.terms;
    if (config_.progress) {
      std::ostringstream extra;
      extra << "lr " << std::scientific << std::setprecision(1) << info.lr;
      for (size_t i = 0; i < n_eval; i++)
        if (std::isfinite(eval[i])) extra << "  " << stage_.eval_metrics()[i] << " " << std::fixed << std::setprecision(3) << eval[i];
      bar.update(info.step, state_.tokens_seen, info.terms.empty() ? info.loss : info.terms[0], extra.str());
    }
    const bool stop = config_.stop_after_step > 0 && info.step >= config_.stop_after_step;
    if ((config_.checkpoint_every > 0 && info.step % config_.checkpoint_every == 0) || info.step == config_.steps || stop)
      save();
    if (stop) break;
  }
  if (config_.progress) bar.finish();
  res.steps_done = state_.step;
  res.finished = state_.step >= config_.steps;
  res.tokens_per_s = res.train_seconds > 0 ? (double)(steps_this_call * tokens_per_step) / res.train_seconds : 0;
  return res;
}

void plot_loss_curves(const std::string& metrics_csv, const std::string& png_path, const std::string& title,
                      double reference, const std::string& reference_label) {
  MetricsTable mt = read_metrics_csv(metrics_csv);
  std::vector<double> steps = mt.column("step");
  std::vector<Series> series;
  size_t color = 0;
  for (const std::string& c : mt.columns) {
    const bool term = c.size() > 5 && c.compare(c.size() - 5, 5, "_loss") == 0 && c.rfind("val_", 0) != 0;
    if (!term) continue;
    std::vector<double> ys = mt.column(c), xs;
    std::vector<double> keep;
    for (size_t i = 0; i < ys.size(); i++)
      if (std::isfinite(ys[i])) xs.push_back(steps[i]), keep.push_back(ys[i]);
    if (xs.empty()) continue;
    series.push_back({c.substr(0, c.size() - 5), xs, keep, colors::cycle(color++)});
  }
  for (const std::string& c : mt.columns) {
    if (c.rfind("val_", 0) != 0 || c.find("loss") == std::string::npos) continue;
    Series vs{c, {}, {}, colors::cycle(color++)};
    std::vector<double> ys = mt.column(c);
    for (size_t i = 0; i < ys.size(); i++)
      if (std::isfinite(ys[i])) vs.xs.push_back(steps[i]), vs.ys.push_back(ys[i]);
    if (!vs.xs.empty()) series.push_back(vs);
  }
  LinePlotOptions lp;
  lp.title = title;
  lp.y_label = "loss (nats)";
  if (std::isfinite(reference)) lp.reference = ReferenceLine{reference, reference_label};
  write_line_plot_png(png_path, series, lp);
}

}  // namespace sg
