// tests/train/test_trainer.cpp — the Trainer on a stage small enough to check by hand: least squares
// y = w·x with a known answer. Named loss terms land in their own metrics.csv columns, the hooks run at
// their fixed points in order, gradient accumulation over k micro-batches equals one batch k times as
// large, eval columns are NaN between evaluations, and stop + resume is bit-identical.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "models/module.h"
#include "ops/ops.h"
#include "tests/data/temp_dir.h"
#include "train/metrics.h"
#include "train/trainer.h"

using namespace sg;
using sg::data::testing::TempDir;

namespace {

// One parameter vector w [4]; data: x_i ~ N(0,1) [4], y_i = w*·x_i with w* = (1, −2, 3, 0.5).
struct Linear4 : Module {
  Tensor w = Tensor::zeros({4}).requires_grad_();
  void parameters(const std::string& prefix, NamedParameters& out) override { out.push_back({join_name(prefix, "w"), &w}); }
};

// Draws rows from its own seeded stream (its checkpointed state is the number of rows drawn).
class RegressionStage : public Stage {
 public:
  RegressionStage(Linear4& m, int64_t rows) : m_(m), rows_(rows) {}
  std::string name() const override { return "regression"; }
  std::vector<std::string> loss_terms() const override { return {"mse", "l2"}; }
  int64_t tokens_per_batch() const override { return rows_; }
  std::vector<std::string> step_metrics() const override { return {"w0"}; }
  std::vector<std::string> eval_metrics() const override { return {"val_loss"}; }

  void make_batch(int64_t) override {
    std::vector<double> x(rows_ * 4), y(rows_);
    for (int64_t i = 0; i < rows_; i++) {
      double yi = 0;
      for (int j = 0; j < 4; j++) {
        x[i * 4 + j] = row_value(drawn_ + i, j);
        yi += x[i * 4 + j] * kW[j];
      }
      y[i] = yi;
    }
    drawn_ += rows_;
    x_ = Tensor::from_vector(std::vector<float>(x.begin(), x.end()), {rows_, 4});
    y_ = Tensor::from_vector(std::vector<float>(y.begin(), y.end()), {rows_});
  }
  BatchLoss batch_loss(int64_t) override {
    Tensor pred = sum(mul(x_, unsqueeze(m_.w, 0)), {1});  // [rows]
    Tensor d = sub(pred, y_);
    Tensor mse = mean(mul(d, d));
    Tensor l2 = mul(sum(mul(m_.w, m_.w)), 1e-3);
    return {add(mse, l2), {mse.item(), l2.item()}};
  }
  std::vector<double> step_metric_values() override { return {m_.w.to_f64_vector()[0]}; }
  std::vector<double> evaluate(int64_t) override {
    double e = 0;
    std::vector<double> w = m_.w.to_f64_vector();
    for (int j = 0; j < 4; j++) e += (w[j] - kW[j]) * (w[j] - kW[j]);
    return {e};
  }
  void save_state(TrainerState& s) const override { s.extra.set("rows_drawn", drawn_); }
  void load_state(const TrainerState& s) override { drawn_ = s.extra.at("rows_drawn").get_int(); }

  // A deterministic "random" value for row r, column j (no RNG state to carry).
  static double row_value(int64_t r, int j) { return std::sin(0.7 * (double)r + 1.3 * j) * 1.5 + std::cos(0.11 * (double)(r * 4 + j)); }
  static constexpr double kW[4] = {1.0, -2.0, 3.0, 0.5};

 private:
  Linear4& m_;
  int64_t rows_, drawn_ = 0;
  Tensor x_, y_;
};

TrainerConfig small_config(const std::string& out, int64_t steps) {
  TrainerConfig c;
  c.steps = steps;
  c.grad_clip = 0;
  c.adamw.weight_decay = 0;
  c.eval_every = 4;
  c.checkpoint_every = 0;
  c.out_dir = out;
  c.run_name = "regression";
  c.progress = false;
  return c;
}

}  // namespace

TEST_CASE("trainer: named terms get columns, the loss falls, eval columns are NaN between evals") {
  TempDir dir("trainer");
  Linear4 m;
  RegressionStage stage(m, 16);
  std::ostringstream log;
  Trainer t(m, stage, small_config(dir.file("run"), 40), LrSchedule::constant(0.05), Rng(1), log);
  CHECK(t.metric_columns() ==
        std::vector<std::string>{"step", "lr", "loss", "mse_loss", "l2_loss", "grad_norm", "tokens_per_s", "w0", "val_loss"});
  TrainerResult r = t.run();
  CHECK(r.steps_done == 40);
  CHECK(r.finished);
  CHECK(r.final_loss < 0.1 * r.first_loss);
  MetricsTable mt = read_metrics_csv(t.metrics_path());
  REQUIRE(mt.rows.size() == 40);
  std::vector<double> mse = mt.column("mse_loss"), l2 = mt.column("l2_loss"), loss = mt.column("loss"), val = mt.column("val_loss");
  for (size_t i = 0; i < mse.size(); i++) CHECK(loss[i] == doctest::Approx(mse[i] + l2[i]).epsilon(1e-6));
  CHECK(std::isnan(val[0]));
  CHECK(std::isfinite(val[3]));  // eval_every 4: step 4
  CHECK(std::isfinite(val[39]));
  CHECK(val[39] < val[3]);
  CHECK(std::filesystem::exists(dir.file("run/checkpoint/trainer_state.json")));
}

TEST_CASE("trainer: hooks run at their fixed points, in order, with the step's numbers") {
  TempDir dir("hooks");
  Linear4 m;
  RegressionStage stage(m, 8);
  std::ostringstream log;
  TrainerConfig c = small_config(dir.file("run"), 4);
  c.eval_every = 2;
  c.checkpoint_every = 2;
  Trainer t(m, stage, c, LrSchedule::constant(0.05), Rng(1), log);
  std::vector<std::string> calls;
  t.hooks.after_backward.push_back([&](const StepInfo& s) {
    // the gradient exists, the parameter has not moved yet, the norm is not computed yet
    CHECK(m.w.grad().defined());
    CHECK(std::isnan(s.grad_norm));
    calls.push_back("backward " + std::to_string(s.step));
  });
  t.hooks.after_optimizer_step.push_back([&](const StepInfo& s) {
    CHECK(std::isfinite(s.grad_norm));
    CHECK(s.terms.size() == 2);
    calls.push_back("optimizer " + std::to_string(s.step));
  });
  t.hooks.at_eval.push_back([&](const StepInfo& s, const std::vector<double>& e) {
    CHECK(e.size() == 1);
    calls.push_back("eval " + std::to_string(s.step));
  });
  t.hooks.at_checkpoint.push_back([&](TrainerState& st) { calls.push_back("checkpoint " + std::to_string(st.step)); });
  t.run();
  CHECK(calls == std::vector<std::string>{"backward 1", "optimizer 1", "backward 2", "optimizer 2", "eval 2", "checkpoint 2",
                                          "backward 3", "optimizer 3", "backward 4", "optimizer 4", "eval 4", "checkpoint 4"});
}

TEST_CASE("trainer: 4 micro-batches of 4 rows = 1 batch of 16 rows (gradient accumulation)") {
  TempDir dir("accum");
  std::ostringstream log;
  Linear4 a, b;
  RegressionStage sa(a, 16), sb(b, 4);
  TrainerConfig ca = small_config(dir.file("a"), 5), cb = small_config(dir.file("b"), 5);
  cb.grad_accum = 4;
  Trainer ta(a, sa, ca, LrSchedule::constant(0.05), Rng(1), log);
  Trainer tb(b, sb, cb, LrSchedule::constant(0.05), Rng(1), log);
  TrainerResult ra = ta.run(), rb = tb.run();
  std::vector<double> wa = a.w.to_f64_vector(), wb = b.w.to_f64_vector();
  for (int j = 0; j < 4; j++) CHECK(wa[j] == doctest::Approx(wb[j]).epsilon(1e-5));
  CHECK(ra.final_loss == doctest::Approx(rb.final_loss).epsilon(1e-5));
  CHECK(ta.state().tokens_seen == tb.state().tokens_seen);
}

TEST_CASE("trainer: stop after 3 steps + resume == 7 steps straight, bit for bit") {
  TempDir dir("resume");
  std::ostringstream log;
  Linear4 a;
  RegressionStage sa(a, 8);
  Trainer ta(a, sa, small_config(dir.file("a"), 7), LrSchedule::warmup_cosine(0.05, 0.005, 2, 7), Rng(1), log);
  TrainerResult ra = ta.run();

  TrainerConfig cb = small_config(dir.file("b"), 7);
  cb.stop_after_step = 3;
  {
    Linear4 b;
    RegressionStage sb(b, 8);
    Trainer tb(b, sb, cb, LrSchedule::warmup_cosine(0.05, 0.005, 2, 7), Rng(1), log);
    CHECK(tb.run().steps_done == 3);
  }
  cb.stop_after_step = 0;
  Linear4 b;
  RegressionStage sb(b, 8);
  Trainer tb(b, sb, cb, LrSchedule::warmup_cosine(0.05, 0.005, 2, 7), Rng(1), log);
  TrainerResult rb = tb.run();
  CHECK(rb.start_step == 3);
  CHECK(rb.steps_done == 7);
  CHECK(rb.final_loss == ra.final_loss);
  CHECK(a.w.to_f64_vector() == b.w.to_f64_vector());
  CHECK(read_metrics_csv(ta.metrics_path()).column("loss") == read_metrics_csv(tb.metrics_path()).column("loss"));
}

TEST_CASE("trainer: a non-finite loss stops the run naming the stage and the step") {
  TempDir dir("nan");
  std::ostringstream log;
  Linear4 m;
  RegressionStage stage(m, 8);
  Trainer t(m, stage, small_config(dir.file("run"), 5), LrSchedule::constant(1e30), Rng(1), log);
  std::string err;
  try {
    t.run();
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK(err.find("[regression] step ") == 0);
  CHECK(err.find("non-finite") != std::string::npos);
}

TEST_CASE("trainer: a run under a NoGradGuard is an error, not a silent run that trains nothing") {
  TempDir dir("nograd");
  std::ostringstream log;
  Linear4 m;
  RegressionStage stage(m, 8);
  Trainer t(m, stage, small_config(dir.file("run"), 3), LrSchedule::constant(0.05), Rng(1), log);
  NoGradGuard no_grad;
  std::string err;
  try {
    t.run();
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK(err.find("[trainer] regression: gradients are off") == 0);
}

namespace {
// RegressionStage whose loss turns NaN from the 0-based step `poison_from` on (as if the weights had exploded).
class PoisonedStage : public RegressionStage {
 public:
  PoisonedStage(Linear4& m, int64_t rows, int64_t poison_from) : RegressionStage(m, rows), poison_from_(poison_from) {}
  BatchLoss batch_loss(int64_t step) override {
    BatchLoss b = RegressionStage::batch_loss(step);
    if (step >= poison_from_) b.total = mul(b.total, std::nan(""));
    return b;
  }

 private:
  int64_t poison_from_;
};
}  // namespace

TEST_CASE("trainer: a non-finite loss keeps the last good checkpoint (nothing saved), and a rerun resumes from it") {
  TempDir dir("nan_keep");
  std::ostringstream log;
  TrainerConfig cfg = small_config(dir.file("run"), 6);
  cfg.checkpoint_every = 2;
  std::string err;
  {
    Linear4 m;
    PoisonedStage stage(m, 8, /*poison_from=*/3);  // steps 1..3 fine, step 4 NaN; checkpoint at step 2
    Trainer t(m, stage, cfg, LrSchedule::constant(0.05), Rng(1), log);
    try {
      t.run();
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  CHECK(err.find("[regression] step 4: non-finite loss nan") == 0);
  CHECK_MESSAGE(err.find("nothing was saved: the last good checkpoint is kept (" + dir.file("run/checkpoint") + ", step 2)") !=
                    std::string::npos, err);
  CHECK(err.find("a rerun resumes from it") != std::string::npos);
  // Following the advice (here: the cause removed) resumes from step 2 and ends as a run that never failed.
  Linear4 m, ref;
  RegressionStage stage(m, 8), ref_stage(ref, 8);
  TrainerConfig ref_cfg = small_config(dir.file("ref"), 6);
  ref_cfg.checkpoint_every = 2;
  Trainer t(m, stage, cfg, LrSchedule::constant(0.05), Rng(1), log);
  Trainer tr(ref, ref_stage, ref_cfg, LrSchedule::constant(0.05), Rng(1), log);
  TrainerResult r = t.run(), rr = tr.run();
  CHECK(r.start_step == 2);
  CHECK(r.steps_done == 6);
  CHECK(m.w.to_f64_vector() == ref.w.to_f64_vector());
  CHECK(read_metrics_csv(t.metrics_path()).column("loss") == read_metrics_csv(tr.metrics_path()).column("loss"));
}

TEST_CASE("trainer: NaN before the first checkpoint: the metrics are kept aside and a rerun starts from step 0") {
  TempDir dir("nan_first");
  std::ostringstream log;
  TrainerConfig cfg = small_config(dir.file("run"), 4);
  cfg.checkpoint_every = 100;
  std::string err;
  {
    Linear4 m;
    PoisonedStage stage(m, 8, 2);
    Trainer t(m, stage, cfg, LrSchedule::constant(0.05), Rng(1), log);
    try {
      t.run();
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  const std::string kept = dir.file("run/metrics.nonfinite-step3.csv");
  CHECK_MESSAGE(err.find("there is no checkpoint yet, so a rerun starts from step 0 (this run's metrics.csv was moved to " + kept) !=
                    std::string::npos, err);
  CHECK(read_metrics_csv(kept).rows.size() == 2);
  Linear4 m;
  RegressionStage stage(m, 8);
  Trainer t(m, stage, cfg, LrSchedule::constant(0.05), Rng(1), log);
  CHECK(t.run().steps_done == 4);  // the advice works: a rerun trains from step 0
}

TEST_CASE("trainer: a run directory with logged steps but no checkpoint, or an incomplete checkpoint/, is refused") {
  TempDir dir("start_over");
  std::ostringstream log;
  TrainerConfig cfg = small_config(dir.file("run"), 3);
  std::filesystem::create_directories(dir.file("run"));
  const std::string metrics = "step,lr,loss\n1,0.05,2.5\n2,0.05,2.1\n";
  {
    std::ofstream(dir.file("run/metrics.csv")) << metrics;
  }
  auto err_of_run = [&] {
    Linear4 m;
    RegressionStage stage(m, 8);
    Trainer t(m, stage, cfg, LrSchedule::constant(0.05), Rng(1), log);
    try {
      t.run();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string err = err_of_run();
  CHECK_MESSAGE(err.find("[trainer] regression: " + dir.file("run/metrics.csv") + " holds 2 logged steps, but there is no "
                         "checkpoint to resume them from") == 0, err);
  CHECK(err.find("move metrics.csv away (or set another out_dir) to start fresh") != std::string::npos);
  CHECK(sg::data::testing::slurp(dir.file("run/metrics.csv")) == metrics);  // never truncated
  // An incomplete checkpoint directory (its trainer_state.json missing: an interrupted copy).
  std::filesystem::remove(dir.file("run/metrics.csv"));
  std::filesystem::create_directories(dir.file("run/checkpoint"));
  {
    std::ofstream(dir.file("run/checkpoint/model.safetensors")) << "partial";
  }
  err = err_of_run();
  CHECK_MESSAGE(err.find("exists but is not a complete checkpoint (no trainer_state.json)") != std::string::npos, err);
  CHECK(sg::data::testing::slurp(dir.file("run/checkpoint/model.safetensors")) == "partial");
}
