// train/dpo.cpp — see dpo.h. Reads top to bottom: the pairs (sampled, read, written), the stage, run_dpo.
#include "train/dpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "data/chat.h"
#include "data/shards.h"
#include "models/generate.h"
#include "models/json.h"
#include "models/logprobs.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/grpo.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/post_stage.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"
#include "train/schedule.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("[dpo] " + msg); }

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 31);
}

int64_t eot_of(const data::Tokenizer& tok) {
  auto eot = tok.find_token("<|endoftext|>");
  if (!eot) fail("the tokenizer has no <|endoftext|> token");
  return *eot;
}

std::vector<int64_t> encode64(const data::Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids = tok.encode(text);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string decode64(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
}

}  // namespace

// ---- the pairs ---------------------------------------------------------------------------------------------

std::vector<PreferencePair> sample_preference_pairs(Transformer& model, const data::Tokenizer& tok,
                                                    const std::vector<data::ReasoningProblem>& pool, int64_t n_prompts,
                                                    int64_t group_size, double temperature, int64_t max_new_tokens,
                                                    const std::string& system, const RewardWeights& weights, uint64_t seed,
                                                    PairSamplingStats* stats) {
  if (pool.empty()) fail("no problems to sample pairs from");
  if (group_size < 2) fail("group_size must be >= 2, got " + std::to_string(group_size));
  n_prompts = std::min<int64_t>(n_prompts, (int64_t)pool.size());
  NoGradGuard no_grad;
  const int64_t eot = eot_of(tok);
  // 1. n distinct problems: the first n of a seeded shuffle of the pool
  std::vector<size_t> order(pool.size());
  std::iota(order.begin(), order.end(), size_t{0});
  Rng rng(mix(seed, 1));
  for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[(size_t)rng.randint(i)]);
  std::vector<std::vector<int64_t>> prompts;
  std::vector<uint64_t> seeds;
  for (int64_t p = 0; p < n_prompts; p++) {
    const std::vector<int64_t> ids = encode64(tok, data::render_prompt(pool[order[(size_t)p]], system));
    for (int64_t g = 0; g < group_size; g++) {
      prompts.push_back(ids);
      seeds.push_back(mix(seed, (uint64_t)(p * group_size + g) + 2));
    }
  }
  // 2. group_size completions per prompt
  SamplingConfig sc;
  sc.temperature = temperature;
  BatchGenerateStats gs;
  const std::vector<std::vector<int64_t>> completions = generate_batch(model, prompts, max_new_tokens, sc, seeds, eot, &gs);
  // 3. the reward of each, 4. one pair per prompt whose rewards are not all equal
  std::vector<RewardTerms> rewards;
  for (size_t i = 0; i < completions.size(); i++)
    rewards.push_back(compute_rewards(decode64(tok, completions[i]), pool[order[i / (size_t)group_size]], weights));
  std::vector<std::vector<int64_t>> group_prompts;
  std::vector<int64_t> problems;
  for (int64_t p = 0; p < n_prompts; p++) {
    group_prompts.push_back(prompts[(size_t)(p * group_size)]);
    problems.push_back((int64_t)order[(size_t)p]);
  }
  PairSamplingStats st;
  std::vector<PreferencePair> pairs = select_preference_pairs(group_prompts, completions, rewards, group_size, problems, &st);
  st.seconds = gs.seconds;
  st.tokens_per_s = gs.new_tokens_per_s;
  if (stats) *stats = st;
  return pairs;
}

std::vector<PreferencePair> select_preference_pairs(const std::vector<std::vector<int64_t>>& prompts,
                                                    const std::vector<std::vector<int64_t>>& completions,
                                                    const std::vector<RewardTerms>& rewards, int64_t group_size,
                                                    const std::vector<int64_t>& problems, PairSamplingStats* stats) {
  const size_t P = prompts.size();
  if (group_size < 1 || completions.size() != P * (size_t)group_size || rewards.size() != completions.size() ||
      problems.size() != P)
    fail("select_preference_pairs: " + std::to_string(P) + " prompts x " + std::to_string(group_size) + " need as many completions (" +
         std::to_string(completions.size()) + "), rewards (" + std::to_string(rewards.size()) + ") and " + std::to_string(P) +
         " problem ids (" + std::to_string(problems.size()) + ")");
  PairSamplingStats st;
  st.prompts = (int64_t)P;
  st.completions = (int64_t)completions.size();
  std::vector<PreferencePair> pairs;
  for (size_t p = 0; p < P; p++) {
    size_t best = p * (size_t)group_size, worst = best;
    for (size_t i = p * (size_t)group_size; i < (p + 1) * (size_t)group_size; i++) {
      st.sampled_accuracy += rewards[i].accuracy;
      st.sampled_format += rewards[i].format;
      st.sampled_reward += rewards[i].total;
      if (rewards[i].total > rewards[best].total) best = i;    // strictly: the first among ties
      if (rewards[i].total < rewards[worst].total) worst = i;
    }
    if (!(rewards[best].total > rewards[worst].total)) {
      st.flat_groups++;
      continue;
    }
    PreferencePair pair;
    pair.prompt = prompts[p];
    pair.chosen = completions[best];
    pair.rejected = completions[worst];
    pair.problem = problems[p];
    st.correct_over_wrong += rewards[best].accuracy > 0 && rewards[worst].accuracy == 0;
    pairs.push_back(std::move(pair));
  }
  st.pairs = (int64_t)pairs.size();
  const double n = (double)std::max<int64_t>(1, st.completions);
  st.sampled_accuracy /= n;
  st.sampled_format /= n;
  st.sampled_reward /= n;
  if (stats) *stats = st;
  return pairs;
}

std::vector<PreferencePair> read_preference_pairs(const std::string& path, const data::Tokenizer& tok, int64_t max_tokens,
                                                  int64_t* skipped) {
  if (!fs::is_regular_file(path)) fail(path + ": no such file");
  const std::string text = data::read_text_file(path);  // zstd-aware
  const int64_t eot = eot_of(tok);
  std::vector<PreferencePair> pairs;
  int64_t n_skipped = 0, line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Json j;
    try {
      j = Json::parse(line, where);
    } catch (const std::exception& e) {
      fail(where + ": not a JSON object (" + e.what() + ")");
    }
    auto field = [&](const char* key) -> std::string {
      const Json* v = j.find(key);
      if (!v || !v->is_string()) fail(where + ": no string \"" + key + "\"");
      return v->get_string();
    };
    std::string prompt, chosen = field("chosen"), rejected = field("rejected");
    if (j.find("prompt")) {
      prompt = field("prompt");
    } else {
      // HH-RLHF: two whole dialogues that share everything up to the last "\n\nAssistant:" turn.
      size_t common = 0;
      while (common < chosen.size() && common < rejected.size() && chosen[common] == rejected[common]) common++;
      const std::string tag = "\n\nAssistant:";
      const size_t cut = chosen.rfind(tag, common >= tag.size() ? common - tag.size() : std::string::npos);
      if (common < tag.size() || cut == std::string::npos) fail(where + ": chosen and rejected share no prompt ending in \"\\n\\nAssistant:\"");
      prompt = chosen.substr(0, cut + tag.size());
      chosen = chosen.substr(cut + tag.size());
      rejected = rejected.substr(cut + tag.size());
    }
    if (chosen == rejected) fail(where + ": chosen and rejected are the same text");
    PreferencePair pair;
    pair.prompt = encode64(tok, prompt);
    pair.chosen = encode64(tok, chosen);
    pair.rejected = encode64(tok, rejected);
    pair.chosen.push_back(eot);
    pair.rejected.push_back(eot);
    if (pair.prompt.empty()) fail(where + ": empty prompt");
    if ((int64_t)(pair.prompt.size() + std::max(pair.chosen.size(), pair.rejected.size())) > max_tokens) {
      n_skipped++;
      continue;
    }
    pairs.push_back(std::move(pair));
  }
  if (skipped) *skipped = n_skipped;
  return pairs;
}

void write_preference_pairs_jsonl(const std::vector<PreferencePair>& pairs, const data::Tokenizer& tok, const std::string& path) {
  std::string text;
  for (const PreferencePair& p : pairs) {
    Json line = Json::object();
    line.set("problem", (long long)p.problem);
    line.set("prompt", decode64(tok, p.prompt));
    line.set("chosen", decode64(tok, p.chosen));
    line.set("rejected", decode64(tok, p.rejected));
    text += line.dump() + "\n";
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write " + tmp);
    f.write(text.data(), (std::streamsize)text.size());
    if (!f) fail("write failed: " + tmp);
  }
  fs::rename(tmp, path);
}

std::string describe_pair_sampling(const PairSamplingStats& s, int64_t group_size, double temperature) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << s.prompts << " prompts x " << group_size << " completions at T = " << temperature
    << " (accuracy " << 100 * s.sampled_accuracy << "%, format " << 100 * s.sampled_format << "%) -> " << s.pairs << " pairs, "
    << s.correct_over_wrong << " of them correct over wrong; " << s.flat_groups << " prompts with all-equal rewards; "
    << std::setprecision(2) << s.seconds << " s of sampling (" << std::setprecision(0) << s.tokens_per_s << " tokens/s)";
  return o.str();
}

// ---- DpoStage ----------------------------------------------------------------------------------------------

DpoStage::DpoStage(Transformer& policy, const Transformer& reference, const data::Tokenizer& tok, const DpoConfig& cfg,
                   const ReasoningConfig& reasoning, std::vector<PreferencePair> pairs,
                   std::vector<data::ReasoningProblem> eval_problems, uint64_t seed)
    : policy_(policy), reference_(reference), tok_(tok), cfg_(cfg), reasoning_(reasoning), pairs_(std::move(pairs)),
      eval_problems_(std::move(eval_problems)), seed_(seed) {
  if (pairs_.empty()) fail("no preference pairs (every sampled prompt was all-correct or all-wrong: sample more prompts)");
  if (cfg_.pairs_per_step < 1) fail("pairs_per_step must be >= 1");
  eot_ = eot_of(tok_);
  shuffle_epoch();
}

// Fisher–Yates with Rng(seed, epoch): the order of an epoch depends on nothing else.
void DpoStage::shuffle_epoch() {
  order_.resize(pairs_.size());
  std::iota(order_.begin(), order_.end(), size_t{0});
  Rng rng(mix(seed_, (uint64_t)epoch_ + 1));
  for (size_t i = order_.size(); i > 1; i--) std::swap(order_[i - 1], order_[(size_t)rng.randint(i)]);
}

void DpoStage::make_batch(int64_t step) {
  (void)step;
  const int64_t B = cfg_.pairs_per_step;
  std::vector<std::vector<int64_t>> prompts((size_t)(2 * B)), completions((size_t)(2 * B));
  for (int64_t b = 0; b < B; b++) {
    if (next_ >= order_.size()) {
      epoch_++;
      shuffle_epoch();
      next_ = 0;
    }
    const PreferencePair& p = pairs_[order_[next_++]];
    prompts[(size_t)b] = prompts[(size_t)(B + b)] = p.prompt;
    completions[(size_t)b] = p.chosen;
    completions[(size_t)(B + b)] = p.rejected;
  }
  pack_rollout_rows(prompts, completions, eot_, tokens_, mask_);
  tokens_ = tokens_.to(policy_.device());
  mask_ = mask_.to(policy_.device());
  NoGradGuard no_grad;  // π_ref's sequence log-probs of the same rows: constants of the loss
  const Tensor ref = sequence_logprobs(token_logprobs(reference_, tokens_), mask_);
  ref_chosen_ = slice(ref, 0, 0, B);
  ref_rejected_ = slice(ref, 0, B, 2 * B);
}

BatchLoss DpoStage::batch_loss(int64_t step) {
  (void)step;
  const int64_t B = cfg_.pairs_per_step;
  const Tensor seq = sequence_logprobs(token_logprobs(policy_, tokens_), mask_);
  last_ = dpo_loss(slice(seq, 0, 0, B), slice(seq, 0, B, 2 * B), ref_chosen_, ref_rejected_, cfg_.beta);
  return BatchLoss{last_.loss, {last_.loss.item()}};
}

std::vector<double> DpoStage::step_metric_values() {
  return {last_.reward_accuracy, last_.reward_margin, last_.chosen_reward, last_.rejected_reward, last_.chosen_logp,
          last_.rejected_logp};
}

std::vector<double> DpoStage::evaluate(int64_t step) {
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

void DpoStage::save_state(TrainerState& state) const {
  Json s = Json::object();
  s.set("epoch", epoch_);
  s.set("next", (int64_t)next_);
  s.set("pairs", (int64_t)pairs_.size());
  state.extra.set("dpo", s);
}

void DpoStage::load_state(const TrainerState& state) {
  const Json* s = state.extra.find("dpo");
  if (!s) fail("the checkpoint has no 'dpo' state (was it written by another stage?)");
  if (s->at("pairs").get_int() != (int64_t)pairs_.size())
    fail("the checkpoint was written with " + std::to_string(s->at("pairs").get_int()) + " pairs, this run has " +
         std::to_string(pairs_.size()) + " (another dpo section or starting model?)");
  epoch_ = s->at("epoch").get_int();
  shuffle_epoch();
  next_ = (size_t)s->at("next").get_int();
}

// ---- run_dpo -----------------------------------------------------------------------------------------------

DpoResult run_dpo(const PretrainConfig& cfg, const std::string& init_model_dir, const std::string& tokenizer_path,
                  std::ostream& log, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const DpoConfig& dc = cfg.dpo;
  const ReasoningConfig& rc = cfg.reasoning;
  PostStageStart start = start_post_stage(cfg, "dpo", dc.out_dir, init_model_dir, tokenizer_path);
  const std::string& out_dir = start.out_dir;
  const data::Tokenizer& tok = start.tok;
  Transformer& policy = start.model;
  Transformer reference = load_model_dir(init_model_dir, DType::f32, "dequant");  // π_ref: the start, frozen
  reference.to(policy.device());

  DpoResult res;
  std::vector<PreferencePair> pairs;
  if (!dc.pairs_file.empty()) {
    int64_t skipped = 0;
    pairs = read_preference_pairs(dc.pairs_file, tok, policy.args.max_seq_len, &skipped);
    log << "dpo: " << pairs.size() << " pairs from " << dc.pairs_file << " (" << skipped << " longer than max_seq_len "
        << policy.args.max_seq_len << ": skipped)\n";
  } else {
    // The same train-split pool (and seed stream) as GRPO's prompts.
    const std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, (int)rc.level);
    pairs = sample_preference_pairs(reference, tok, pool, dc.sample_prompts, dc.group_size, dc.temperature, rc.max_new_tokens,
                                    rc.system_prompt(), {dc.accuracy_weight, dc.format_weight}, cfg.train.seed + 31, &res.sampling);
    log << "dpo: pairs from the starting model's own samples: " << describe_pair_sampling(res.sampling, dc.group_size, dc.temperature) << "\n";
  }
  res.n_pairs = (int64_t)pairs.size();
  if (!pairs.empty()) write_preference_pairs_jsonl(pairs, tok, (fs::path(out_dir) / "pairs.jsonl").string());
  std::vector<data::ReasoningProblem> val = data::reasoning_split(data::Split::val, rc.seed, (int)dc.eval_problems, (int)rc.level);

  TrainerConfig trc = post_trainer_config(dc, /*grad_accum=*/1, out_dir, cfg.name + "-dpo", progress);
  trc.identity = checkpoint_identity(policy.args, &tok);
  const LrSchedule schedule = post_schedule(dc);
  DpoStage stage(policy, reference, tok, dc, rc, std::move(pairs), std::move(val), cfg.train.seed + 32);
  Trainer trainer(policy, stage, trc, schedule, Rng(cfg.train.seed + 33), log);
  log << "dpo: from " << init_model_dir << "; " << dc.steps << " steps x " << dc.pairs_per_step << " pairs, beta " << dc.beta
      << "; " << schedule.describe() << "\n";
  TrainerResult tr = trainer.run();
  res.start_step = tr.start_step;
  res.steps_done = tr.steps_done;
  res.first_loss = tr.first_loss;
  res.final_loss = tr.final_loss;
  res.final_reward_accuracy = stage.last().reward_accuracy;
  res.final_reward_margin = stage.last().reward_margin;
  if (!tr.final_eval.empty()) res.final_val_accuracy = tr.final_eval[0];
  res.tokens_per_s = tr.tokens_per_s;
  res.model_dir = (fs::path(out_dir) / "model").string();
  if (tr.finished) {
    plot_loss_curves(trainer.metrics_path(), (fs::path(out_dir) / "loss.png").string(), "DPO loss (" + cfg.name + ")", std::log(2.0),
                     "log 2 (the start)");
    MetricsTable mt = read_metrics_csv(trainer.metrics_path());
    write_line_plot_png((fs::path(out_dir) / "rewards.png").string(),
                        {{"reward accuracy", mt.column("step"), mt.column("reward_accuracy"), colors::blue},
                         {"reward margin", mt.column("step"), mt.column("reward_margin"), colors::green}},
                        "DPO: implicit reward accuracy and margin per step (" + cfg.name + ")");
    save_model_dir(policy, res.model_dir);
    copy_tokenizer_into(tokenizer_path, res.model_dir);
  }
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace sg
