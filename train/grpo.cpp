// train/grpo.cpp — see grpo.h. Reads top to bottom: packing the rows, one rollout, the loss, the stage's
// state, run_grpo.
#include "train/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <stdexcept>

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "data/chat.h"
#include "models/generate.h"
#include "models/logprobs.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/plot.h"
#include "train/reasoning_eval.h"
#include "train/schedule.h"
#include "train/sft.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL ^ (c + 1) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

Json tensor_to_json(const Tensor& t) {
  Json a = Json::array();
  for (double v : t.to_f64_vector()) a.push_back(Json(v));
  return a;
}
std::vector<double> json_to_doubles(const Json& a) {
  std::vector<double> v;
  for (const Json& e : a.elements()) v.push_back(e.get_double());
  return v;
}
Tensor f32_tensor(const std::vector<double>& v, const Shape& shape) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector(f, shape);
}
double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / (double)v.size();
}

}  // namespace

void pack_rollout_rows(const std::vector<std::vector<int64_t>>& prompts, const std::vector<std::vector<int64_t>>& completions,
                       int64_t pad_id, Tensor& tokens, Tensor& mask) {
  if (prompts.size() != completions.size() || prompts.empty())
    throw std::invalid_argument("[grpo] pack_rollout_rows: " + std::to_string(prompts.size()) + " prompts and " +
                                std::to_string(completions.size()) + " completions");
  const int64_t N = (int64_t)prompts.size();
  int64_t L = 2;
  for (int64_t i = 0; i < N; i++) L = std::max<int64_t>(L, (int64_t)(prompts[i].size() + completions[i].size()));
  std::vector<int64_t> tok((size_t)(N * L), pad_id);
  std::vector<float> m((size_t)(N * (L - 1)), 0.0f);
  for (int64_t i = 0; i < N; i++) {
    const int64_t P = (int64_t)prompts[i].size(), C = (int64_t)completions[i].size();
    if (P == 0) throw std::invalid_argument("[grpo] pack_rollout_rows: row " + std::to_string(i) + " has an empty prompt");
    for (int64_t t = 0; t < P; t++) tok[(size_t)(i * L + t)] = prompts[i][(size_t)t];
    for (int64_t t = 0; t < C; t++) {
      tok[(size_t)(i * L + P + t)] = completions[i][(size_t)t];
      m[(size_t)(i * (L - 1) + P + t - 1)] = 1.0f;  // position P+t−1 predicts completion token t
    }
  }
  tokens = Tensor::from_vector(tok, {N, L});
  mask = Tensor::from_vector(m, {N, L - 1});
}

// ---- GrpoStage --------------------------------------------------------------------------------------------

GrpoStage::GrpoStage(Transformer& policy, const Transformer& reference, const data::Tokenizer& tok, const GrpoConfig& cfg,
                     const ReasoningConfig& reasoning, std::vector<data::ReasoningProblem> pool,
                     std::vector<data::ReasoningProblem> eval_problems, uint64_t seed)
    : policy_(policy), reference_(reference), tok_(tok), cfg_(cfg), reasoning_(reasoning), pool_(std::move(pool)),
      eval_problems_(std::move(eval_problems)), seed_(seed) {
  if (pool_.empty()) throw std::invalid_argument("[grpo] no training problems");
  if (cfg_.group_size < 2) throw std::invalid_argument("[grpo] group_size must be >= 2, got " + std::to_string(cfg_.group_size));
  auto eot = tok_.find_token("<|endoftext|>");
  if (!eot) throw std::invalid_argument("[grpo] the tokenizer has no <|endoftext|> token");
  eot_ = *eot;
}

int64_t GrpoStage::tokens_per_batch() const {
  return rollout_.tokens.defined() ? rollout_.tokens.numel() : 0;  // read after make_batch, so the rollout exists
}

std::vector<std::string> GrpoStage::step_metrics() const {
  return {"reward", "accuracy", "format", "kl_mean", "response_length", "clip_fraction", "ratio_mean", "entropy",
          "zero_std_groups", "rollout_tokens_per_s"};
}

Rollout GrpoStage::sample_rollout(int64_t index) {
  NoGradGuard no_grad;
  Rollout r;
  r.index = index;
  r.prompts = cfg_.prompts_per_step;
  r.group_size = cfg_.group_size;
  const int64_t P = r.prompts, G = r.group_size, N = P * G;

  // 1. the prompts of this rollout
  Rng pick(mix_seed(seed_, (uint64_t)index, 1));
  std::vector<std::vector<int64_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int64_t p = 0; p < P; p++) {
    const int64_t k = (int64_t)pick.randint(pool_.size());
    std::vector<int32_t> ids = tok_.encode(data::render_prompt(pool_[(size_t)k], reasoning_.system_prompt()));
    for (int64_t g = 0; g < G; g++) {
      r.problem.push_back(k);
      prompts.emplace_back(ids.begin(), ids.end());
      seeds.push_back(mix_seed(seed_, (uint64_t)index, (uint64_t)(p * G + g) + 2));
    }
  }
  // 2. G completions per prompt, batched through the KV cache
  SamplingConfig sc;
  sc.temperature = cfg_.temperature;
  sc.top_p = cfg_.top_p;
  BatchGenerateStats gs;
  std::vector<std::vector<int64_t>> completions =
      generate_batch(policy_, prompts, reasoning_.max_new_tokens, sc, seeds, eot_, &gs);
  r.seconds = gs.seconds;
  r.tokens_per_s = gs.new_tokens_per_s;

  // 3. rewards from the decoded text
  RewardWeights w{cfg_.accuracy_weight, cfg_.format_weight};
  std::vector<double> rewards;
  for (int64_t i = 0; i < N; i++) {
    std::vector<int32_t> c32(completions[(size_t)i].begin(), completions[(size_t)i].end());
    r.completions.push_back(tok_.decode(c32));
    RewardTerms rt = compute_rewards(r.completions.back(), pool_[(size_t)r.problem[(size_t)i]], w);
    r.reward.push_back(rt.total);
    r.accuracy.push_back(rt.accuracy);
    r.format.push_back(rt.format);
    r.length.push_back((int64_t)completions[(size_t)i].size());
  }
  // 4. group-normalised advantages
  r.advantages = reshape(group_advantages(f32_tensor(r.reward, {P, G})), {N});
  int64_t flat = 0;
  for (int64_t p = 0; p < P; p++) {
    bool equal = true;
    for (int64_t g = 1; g < G; g++) equal = equal && r.reward[(size_t)(p * G + g)] == r.reward[(size_t)(p * G)];
    flat += equal;
  }
  r.zero_std_groups = (double)flat / (double)P;
  // 5. rows and mask; 6. π_old and π_ref log-probs, no tape
  pack_rollout_rows(prompts, completions, eot_, r.tokens, r.mask);
  r.old_logp = token_logprobs(policy_, r.tokens).detach();
  r.ref_logp = token_logprobs(reference_, r.tokens).detach();
  return r;
}

void GrpoStage::make_batch(int64_t step) {
  const int64_t index = step / cfg_.inner_iterations;
  if (rollout_.index != index) rollout_ = sample_rollout(index);  // else: the next inner iteration on the same samples
}

BatchLoss GrpoStage::batch_loss(int64_t step) {
  (void)step;
  TokenLogprobs lp = token_logprobs_and_entropy(policy_, rollout_.tokens);
  GRPOLossConfig lc;
  lc.clip_eps = cfg_.clip_eps;
  lc.kl_beta = cfg_.kl_beta;
  lc.norm = parse_grpo_norm(cfg_.norm);
  last_ = grpo_loss(lp.logp, rollout_.old_logp, rollout_.ref_logp, rollout_.mask, rollout_.advantages, lc);
  std::vector<double> ent = lp.entropy.to_f64_vector(), m = rollout_.mask.to_f64_vector();
  double se = 0, sm = 0;
  for (size_t i = 0; i < ent.size(); i++) se += ent[i] * m[i], sm += m[i];
  last_entropy_ = sm > 0 ? se / sm : NAN;
  return BatchLoss{last_.loss, {last_.policy_loss.item(), last_.kl.item()}};
}

std::vector<double> GrpoStage::step_metric_values() {
  double len = 0;
  for (int64_t l : rollout_.length) len += (double)l;
  len /= (double)std::max<size_t>(1, rollout_.length.size());
  return {mean_of(rollout_.reward), mean_of(rollout_.accuracy), mean_of(rollout_.format), last_.kl_mean, len,
          last_.clip_fraction, last_.ratio_mean, last_entropy_, rollout_.zero_std_groups, rollout_.tokens_per_s};
}

std::vector<double> GrpoStage::evaluate(int64_t step) {
  (void)step;
  if (eval_problems_.empty()) return {NAN};
  ProblemEvalOptions eo;
  eo.samples = 1;
  eo.temperature = 0;
  eo.max_new_tokens = reasoning_.max_new_tokens;
  eo.seed = reasoning_.seed;
  eo.system = reasoning_.system_prompt();
  return {evaluate_problems(policy_, tok_, eval_problems_, eo).accuracy};
}

void GrpoStage::save_state(TrainerState& state) const {
  Json s = Json::object();
  s.set("rollout_index", rollout_.index);
  if (rollout_.tokens.defined()) {
    const Rollout& r = rollout_;
    Json toks = Json::array();
    for (double v : r.tokens.to_f64_vector()) toks.push_back(Json((int64_t)v));
    s.set("rows", r.tokens.shape()[0]);
    s.set("cols", r.tokens.shape()[1]);
    s.set("tokens", toks);
    s.set("mask", tensor_to_json(r.mask));
    s.set("old_logp", tensor_to_json(r.old_logp));
    s.set("ref_logp", tensor_to_json(r.ref_logp));
    s.set("advantages", tensor_to_json(r.advantages));
    Json reward = Json::array(), acc = Json::array(), fmt = Json::array(), len = Json::array(), prob = Json::array();
    for (size_t i = 0; i < r.reward.size(); i++) {
      reward.push_back(Json(r.reward[i]));
      acc.push_back(Json(r.accuracy[i]));
      fmt.push_back(Json(r.format[i]));
      len.push_back(Json(r.length[i]));
      prob.push_back(Json(r.problem[i]));
    }
    s.set("reward", reward);
    s.set("accuracy", acc);
    s.set("format", fmt);
    s.set("length", len);
    s.set("problem", prob);
    s.set("zero_std_groups", r.zero_std_groups);
    s.set("tokens_per_s", r.tokens_per_s);
  }
  state.extra.set("grpo", s);
}

void GrpoStage::load_state(const TrainerState& state) {
  const Json* s = state.extra.find("grpo");
  if (!s) throw std::runtime_error("[grpo] the checkpoint has no 'grpo' state (was it written by another stage?)");
  rollout_ = Rollout{};
  rollout_.index = s->at("rollout_index").get_int();
  if (!s->contains("tokens")) return;
  const int64_t N = s->at("rows").get_int(), L = s->at("cols").get_int();
  std::vector<int64_t> toks;
  for (const Json& e : s->at("tokens").elements()) toks.push_back(e.get_int());
  auto check = [&](const char* key, size_t want) {
    if (s->at(key).size() != want)
      throw std::runtime_error(std::string("[grpo] checkpoint rollout: '") + key + "' has " + std::to_string(s->at(key).size()) +
                               " values, expected " + std::to_string(want));
  };
  check("tokens", (size_t)(N * L));
  check("mask", (size_t)(N * (L - 1)));
  check("old_logp", (size_t)(N * (L - 1)));
  check("ref_logp", (size_t)(N * (L - 1)));
  check("advantages", (size_t)N);
  rollout_.tokens = Tensor::from_vector(toks, {N, L});
  rollout_.mask = f32_tensor(json_to_doubles(s->at("mask")), {N, L - 1});
  rollout_.old_logp = f32_tensor(json_to_doubles(s->at("old_logp")), {N, L - 1});
  rollout_.ref_logp = f32_tensor(json_to_doubles(s->at("ref_logp")), {N, L - 1});
  rollout_.advantages = f32_tensor(json_to_doubles(s->at("advantages")), {N});
  rollout_.reward = json_to_doubles(s->at("reward"));
  rollout_.accuracy = json_to_doubles(s->at("accuracy"));
  rollout_.format = json_to_doubles(s->at("format"));
  for (const Json& e : s->at("length").elements()) rollout_.length.push_back(e.get_int());
  for (const Json& e : s->at("problem").elements()) rollout_.problem.push_back(e.get_int());
  rollout_.zero_std_groups = s->at("zero_std_groups").get_double();
  rollout_.tokens_per_s = s->at("tokens_per_s").get_double();
  rollout_.prompts = cfg_.prompts_per_step;
  rollout_.group_size = cfg_.group_size;
}

// ---- run_grpo ----------------------------------------------------------------------------------------------

GrpoResult run_grpo(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                    std::ostream& log, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const GrpoConfig& gc = cfg.grpo;
  const ReasoningConfig& rc = cfg.reasoning;
  PostStageStart start = start_post_stage(cfg, "grpo", gc.out_dir, init_model_dir, tokenizer_path);
  const std::string& out_dir = start.out_dir;
  const data::Tokenizer& tok = start.tok;
  Transformer& policy = start.model;
  // π_ref: the initial policy, frozen (FP8 weights dequantized, as the policy), on the policy's device.
  Transformer reference = load_model_dir(init_model_dir, DType::f32, "dequant");
  reference.to(policy.device());
  if (policy.args.max_batch_size < gc.group_size)
    log << "grpo: note: model.max_batch_size " << policy.args.max_batch_size << " < group_size " << gc.group_size
        << ": the sampler decodes in chunks of " << policy.args.max_batch_size << " rows\n";

  const int level = (int)rc.level;
  // The prompt pool: train-split problems (a different seed stream than SFT's examples, same split).
  std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, level);
  std::vector<data::ReasoningProblem> val = data::reasoning_split(data::Split::val, rc.seed, (int)gc.eval_problems, level);

  TrainerConfig trc = post_trainer_config(gc, /*grad_accum=*/1, out_dir, cfg.name + "-grpo", progress);
  trc.identity = checkpoint_identity(policy.args, &tok);  // resume refuses another model's or tokenizer's checkpoint
  const LrSchedule schedule = post_schedule(gc);
  GrpoStage stage(policy, reference, tok, gc, rc, std::move(pool), std::move(val), cfg.train.seed + 21);
  Trainer trainer(policy, stage, trc, schedule, Rng(cfg.train.seed + 22), log);
  GrpoResult res;
  double tps_sum = 0;
  int64_t tps_n = 0;
  trainer.hooks.after_optimizer_step.push_back([&](const StepInfo& info) {
    if ((info.step - 1) % gc.inner_iterations == 0) tps_sum += stage.rollout().tokens_per_s, tps_n++;
    if (std::isnan(res.first_reward)) res.first_reward = mean_of(stage.rollout().reward);
    res.final_reward = mean_of(stage.rollout().reward);
  });
  log << "grpo: from " << init_model_dir << (gc.init == "pretrain" ? " (R1-Zero: no SFT)" : "") << "; " << gc.steps
      << " steps, " << gc.prompts_per_step << " prompts x " << gc.group_size << " completions per rollout, mu = "
      << gc.inner_iterations << ", eps " << gc.clip_eps << ", beta " << gc.kl_beta << ", " << gc.norm
      << " normalisation, T = " << gc.temperature << ", rewards " << gc.accuracy_weight << " accuracy + " << gc.format_weight
      << " format; " << schedule.describe() << "\n";
  TrainerResult tr = trainer.run();
  res.start_step = tr.start_step;
  res.steps_done = tr.steps_done;
  if (!tr.final_eval.empty()) res.final_val_accuracy = tr.final_eval[0];
  res.tokens_per_s = tr.tokens_per_s;
  res.mean_rollout_tokens_per_s = tps_n ? tps_sum / (double)tps_n : NAN;
  res.model_dir = (fs::path(out_dir) / "model").string();
  if (tr.finished) {
    MetricsTable mt = read_metrics_csv(trainer.metrics_path());
    write_line_plot_png((fs::path(out_dir) / "reward.png").string(),
                        {{"reward", mt.column("step"), mt.column("reward"), colors::blue},
                         {"accuracy", mt.column("step"), mt.column("accuracy"), colors::green},
                         {"format", mt.column("step"), mt.column("format"), colors::orange}},
                        "GRPO rollouts: mean reward, accuracy, format (" + cfg.name + ")");
    write_line_plot_png((fs::path(out_dir) / "length.png").string(),
                        {{"response length", mt.column("step"), mt.column("response_length"), colors::blue}},
                        "GRPO: mean completion length in tokens (" + cfg.name + ")");
    save_model_dir(policy, res.model_dir);
    copy_tokenizer_into(tokenizer_path, res.model_dir);
  }
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace sg
