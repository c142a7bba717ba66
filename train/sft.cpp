// train/sft.cpp — see sft.h. Reads top to bottom: packing, the examples, the stage, run_sft.
#include "train/sft.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <numeric>
#include <stdexcept>

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "data/reasoning.h"
#include "train/checkpoint.h"
#include "train/plot.h"
#include "train/problems.h"
#include "train/reasoning_eval.h"
#include "train/schedule.h"

namespace sg {
namespace fs = std::filesystem;

PackedBatch pack_sft_rows(const std::vector<data::SftTokens>& examples, const std::vector<size_t>& order, size_t& next,
                          int64_t B, int64_t T, int64_t pad_id, bool wrap) {
  if (examples.empty() || order.empty()) throw std::invalid_argument("[sft] pack_sft_rows: no examples");
  if (B <= 0 || T <= 1) throw std::invalid_argument("[sft] pack_sft_rows: B and T must be positive (T >= 2)");
  std::vector<int64_t> tokens((size_t)(B * T), pad_id), targets((size_t)(B * T), -100), seg((size_t)(B * T), 0);
  PackedBatch out;
  bool exhausted = false;
  for (int64_t b = 0; b < B; b++) {
    int64_t pos = 0, segment = 0;
    while (!exhausted) {
      if (next >= order.size()) {
        if (!wrap) { exhausted = true; break; }
        next = 0;
      }
      const size_t k = order[next];
      const data::SftTokens& ex = examples.at(k);
      const int64_t n = (int64_t)ex.ids.size();
      if (n > T)
        throw std::invalid_argument("[sft] example " + std::to_string(k) + " has " + std::to_string(n) +
                                    " tokens, more than seq_len " + std::to_string(T));
      if (pos + n > T) break;  // the row is full: this example opens the next row
      for (int64_t j = 0; j < n; j++) {
        const size_t p = (size_t)(b * T + pos + j);
        tokens[p] = ex.ids[(size_t)j];
        seg[p] = segment;
        if (j + 1 < n && ex.loss_mask[(size_t)(j + 1)]) {
          targets[p] = ex.ids[(size_t)(j + 1)];
          out.target_tokens++;
        }
      }
      pos += n;
      segment++;
      next++;
      out.examples++;
    }
    for (int64_t p = pos; p < T; p++) seg[(size_t)(b * T + p)] = segment++;  // padding: one segment per position
    out.pad_tokens += T - pos;
  }
  out.tokens = Tensor::from_vector(tokens, {B, T});
  out.targets = Tensor::from_vector(targets, {B, T});
  out.segment_ids = Tensor::from_vector(seg, {B, T});
  return out;
}

std::vector<data::SftTokens> make_sft_examples(const data::Tokenizer& tok, const std::vector<data::ReasoningProblem>& problems,
                                               const std::string& system) {
  std::vector<data::SftTokens> out;
  out.reserve(problems.size());
  for (const data::ReasoningProblem& p : problems) out.push_back(data::encode_sft(tok, data::render_sft_example(p, system)));
  return out;
}

std::vector<data::ReasoningProblem> sft_problems(const ReasoningConfig& rc, data::Split split, int64_t n) {
  std::vector<data::ReasoningProblem> ps = data::reasoning_split(split, rc.seed, (int)n, (int)rc.level);
  data::apply_solution_style(ps, data::parse_solution_style(rc.solution));
  return ps;
}

// ---- SftStage ------------------------------------------------------------------------------------------

SftStage::SftStage(Transformer& model, const data::Tokenizer& tok, const SftConfig& cfg, const ReasoningConfig& reasoning,
                   std::vector<data::SftTokens> train_examples, std::vector<data::SftTokens> val_examples,
                   std::vector<data::ReasoningProblem> eval_problems, uint64_t seed)
    : model_(model), tok_(tok), cfg_(cfg), reasoning_(reasoning), train_(std::move(train_examples)),
      val_(std::move(val_examples)), eval_problems_(std::move(eval_problems)), seed_(seed) {
  if (train_.empty()) throw std::invalid_argument("[sft] no training examples");
  auto eot = tok_.find_token("<|endoftext|>");
  if (!eot) throw std::invalid_argument("[sft] the tokenizer has no <|endoftext|> token");
  pad_id_ = *eot;
  shuffle_epoch();
}

// Fisher–Yates with Rng(seed, epoch): the order of an epoch depends on nothing else.
void SftStage::shuffle_epoch() {
  order_.resize(train_.size());
  std::iota(order_.begin(), order_.end(), size_t{0});
  Rng rng(seed_ * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch_ + 1);
  for (size_t i = order_.size(); i > 1; i--) std::swap(order_[i - 1], order_[(size_t)rng.randint(i)]);
}

void SftStage::make_batch(int64_t step) {
  if (step != loads_step_) {
    step_loads_.clear();
    loads_step_ = step;
    step_examples_ = step_targets_ = 0;
  }
  // Whole examples per row, in the epoch's order; the epoch's last batch may end with padding rows.
  batch_ = pack_sft_rows(train_, order_, next_, cfg_.batch_size, cfg_.seq_len, pad_id_, /*wrap=*/false);
  if (next_ >= order_.size()) {
    epoch_++;
    shuffle_epoch();
    next_ = 0;
  }
  step_examples_ += batch_.examples;
  step_targets_ += batch_.target_tokens;
}

BatchLoss SftStage::batch_loss(int64_t step) {
  (void)step;
  LossOptions lopt;
  lopt.mtp_lambda = cfg_.mtp_lambda;
  lopt.balance_alpha = cfg_.balance_alpha;
  lopt.segment_ids = batch_.segment_ids;
  LossOutput lo = model_.loss(batch_.tokens, batch_.targets, lopt);
  add_expert_loads(step_loads_, lo.expert_loads);
  double mtp = 0;
  for (auto& l : lo.mtp_losses) mtp += l.item();
  if (!lo.mtp_losses.empty()) mtp /= (double)lo.mtp_losses.size();
  return BatchLoss{lo.loss, {lo.main_loss.item(), mtp, lo.balance_loss.defined() ? lo.balance_loss.item() : 0.0}};
}

void SftStage::update_biases() {
  if (cfg_.bias_gamma > 0 && !step_loads_.empty()) model_.update_gate_biases(step_loads_, cfg_.bias_gamma);
}

std::vector<double> SftStage::step_metric_values() { return {(double)step_examples_, (double)step_targets_}; }

std::vector<double> SftStage::evaluate(int64_t step) {
  (void)step;
  double val_loss = NAN;
  if (!val_.empty()) {
    NoGradGuard no_grad;
    std::vector<size_t> order(val_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    size_t next = 0;
    double sum = 0;
    int64_t n = 0;
    while (next < order.size()) {  // every val example once, token-weighted mean
      PackedBatch vb = pack_sft_rows(val_, order, next, cfg_.batch_size, cfg_.seq_len, pad_id_, false);
      if (vb.target_tokens == 0) break;
      LossOptions lopt;
      lopt.segment_ids = vb.segment_ids;
      LossOutput lo = model_.loss(vb.tokens, vb.targets, lopt);
      sum += lo.main_loss.item() * (double)vb.target_tokens;
      n += vb.target_tokens;
    }
    if (n > 0) val_loss = sum / (double)n;
  }
  double val_acc = NAN;
  if (!eval_problems_.empty()) {
    ProblemEvalOptions eo;
    eo.samples = 1;
    eo.temperature = 0;
    eo.max_new_tokens = reasoning_.max_new_tokens;
    eo.seed = reasoning_.seed;
    eo.system = reasoning_.system_prompt();
    val_acc = evaluate_problems(model_, tok_, eval_problems_, eo).accuracy;
  }
  return {val_loss, val_acc};
}

void SftStage::save_state(TrainerState& state) const {
  Json s = Json::object();
  s.set("epoch", epoch_);
  s.set("next", (int64_t)next_);
  state.extra.set("sft", s);
}

void SftStage::load_state(const TrainerState& state) {
  const Json* s = state.extra.find("sft");
  if (!s) throw std::runtime_error("[sft] the checkpoint has no 'sft' state (was it written by another stage?)");
  epoch_ = s->at("epoch").get_int();
  shuffle_epoch();
  next_ = (size_t)s->at("next").get_int();
  if (next_ > order_.size()) throw std::runtime_error("[sft] checkpoint position " + std::to_string(next_) + " is past the epoch's " + std::to_string(order_.size()) + " examples");
}

// ---- run_sft ---------------------------------------------------------------------------------------------

SftResult run_sft(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                  std::ostream& log, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const SftConfig& sc = cfg.sft;
  const ReasoningConfig& rc = cfg.reasoning;
  PostStageStart start = start_post_stage(cfg, "sft", sc.out_dir, init_model_dir, tokenizer_path);
  const std::string& out_dir = start.out_dir;
  const data::Tokenizer& tok = start.tok;
  Transformer& model = start.model;

  const int level = (int)rc.level;
  std::vector<data::ReasoningProblem> train_problems = sft_problems(rc, data::Split::train, sc.n_problems);
  std::vector<data::ReasoningProblem> val_problems = sft_problems(rc, data::Split::val, sc.eval_problems);
  std::vector<data::SftTokens> train_examples = make_sft_examples(tok, train_problems, rc.system_prompt());
  std::vector<data::SftTokens> val_examples = make_sft_examples(tok, val_problems, rc.system_prompt());

  if (!sc.data.empty()) {  // e.g. ../shared/data/gsm8k_train.jsonl.zst: the same path, other problems
    int64_t skipped = 0, too_long = 0, no_solution = 0, added = 0;
    std::vector<data::ReasoningProblem> extra = read_reasoning_file(sc.data, &skipped);
    for (const data::ReasoningProblem& p : extra) {
      if (p.think.empty()) { no_solution++; continue; }
      data::SftTokens e = data::encode_sft(tok, data::render_sft_example(p, rc.system_prompt()));
      if ((int64_t)e.ids.size() > sc.seq_len) { too_long++; continue; }
      train_examples.push_back(std::move(e));
      added++;
    }
    log << "sft: " << sc.data << ": " << added << " examples added (" << too_long << " longer than seq_len " << sc.seq_len
        << ", " << no_solution << " without a worked solution, " << skipped << " with a non-integer answer: skipped)\n";
    if (added == 0) throw std::runtime_error("[sft] " + sc.data + ": no usable example (each needs a worked solution and must fit sft.seq_len)");
  }
  SftResult res;
  res.n_examples = (int64_t)train_examples.size();
  int64_t tok_sum = 0, tgt_sum = 0;
  for (auto& e : train_examples) tok_sum += (int64_t)e.ids.size(), tgt_sum += (int64_t)(e.ids.size() - e.prompt_tokens);
  res.mean_example_tokens = (double)tok_sum / (double)res.n_examples;
  res.mean_target_tokens = (double)tgt_sum / (double)res.n_examples;

  TrainerConfig trc = post_trainer_config(sc, sc.grad_accum, out_dir, cfg.name + "-sft", progress);
  trc.identity = checkpoint_identity(model.args, &tok);  // resume refuses another model's or tokenizer's checkpoint
  const LrSchedule schedule = post_schedule(sc);
  SftStage stage(model, tok, sc, rc, std::move(train_examples), std::move(val_examples), val_problems, cfg.train.seed + 11);
  Trainer trainer(model, stage, trc, schedule, Rng(cfg.train.seed + 12), log);
  trainer.hooks.after_optimizer_step.push_back([&](const StepInfo&) { stage.update_biases(); });
  log << "sft: " << res.n_examples << " worked solutions (level " << level << ", " << rc.solution << " solutions, train split), " << std::fixed
      << std::setprecision(1) << res.mean_example_tokens << " tokens each of which " << res.mean_target_tokens
      << " are the assistant's (the only ones with a loss)\n" << std::defaultfloat
      << "sft: " << sc.steps << " steps x " << sc.grad_accum << " x " << sc.batch_size << " rows x " << sc.seq_len
      << " tokens (packed, attention within each example), " << schedule.describe() << "\n";
  TrainerResult tr = trainer.run();
  res.start_step = tr.start_step;
  res.steps_done = tr.steps_done;
  res.first_loss = tr.first_loss;
  res.final_loss = tr.final_loss;
  if (!tr.final_eval.empty()) res.final_val_loss = tr.final_eval[0], res.final_val_accuracy = tr.final_eval[1];
  res.tokens_per_s = tr.tokens_per_s;
  res.model_dir = (fs::path(out_dir) / "model").string();
  if (tr.finished) {
    plot_loss_curves(trainer.metrics_path(), (fs::path(out_dir) / "loss.png").string(), "SFT loss on assistant tokens (" + cfg.name + ")",
                     NAN, "");
    save_model_dir(model, res.model_dir);
    copy_tokenizer_into(tokenizer_path, res.model_dir);
  }
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace sg
