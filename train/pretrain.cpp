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

#include "autograd/runtime.h"
#include "data/generators.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/clip.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/progress.h"
#include "train/schedule.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr uint64_t kValSeed = 0x5eed0fa1ULL;  // validation batches: the same ones at every evaluation

struct PreparedData {
  data::Tokenizer tokenizer;
  std::vector<std::string> train_shards, val_shards;
  int64_t train_tokens = 0, val_tokens = 0;
  bool reused = false;
};

// What the data depends on; the shards are reused only if this line matches the one stored with them.
std::string data_signature(const DataConfig& d) {
  std::ostringstream s;
  s << "source=" << d.source << " text_path=" << d.text_path << " n_stories=" << d.n_stories
    << " vocab_size=" << d.vocab_size << " max_text_bytes=" << d.max_text_bytes;
  return s.str();
}

int64_t count_tokens(const std::vector<std::string>& shards) {
  int64_t n = 0;
  for (auto& p : shards) n += (int64_t)data::read_shard_header(p).n_tokens;
  return n;
}

// DATA_PREP. The tokenizer file is written last: its presence (with a matching signature) means the
// shards before it are complete.
PreparedData prepare_data(const TrainConfig& tc, std::ostream& log) {
  const fs::path dir = fs::path(tc.out_dir) / "data";
  const std::string tok_path = (dir / "tokenizer.txt").string(), sig_path = (dir / "signature.txt").string();
  const std::string sig = data_signature(tc.data);
  PreparedData out;
  if (fs::exists(tok_path) && fs::exists(sig_path)) {
    std::ifstream f(sig_path);
    std::string line;
    std::getline(f, line);
    if (line == sig) {
      out.tokenizer = data::Tokenizer::load(tok_path);
      out.train_shards = data::list_shards((dir / "train").string());
      out.val_shards = data::list_shards((dir / "val").string());
      if (!out.train_shards.empty() && !out.val_shards.empty()) {
        out.train_tokens = count_tokens(out.train_shards);
        out.val_tokens = count_tokens(out.val_shards);
        out.reused = true;
        log << "data: reusing " << dir.string() << " (" << out.train_tokens << " train + " << out.val_tokens
            << " val tokens, vocab " << out.tokenizer.vocab_size() << ")\n";
        return out;
      }
    }
  }
  auto t0 = Clock::now();
  std::string text;
  if (tc.data.source == "generated") {
    text = data::generate_story_corpus(tc.seed, (int)tc.data.n_stories);
  } else {
    text = data::read_text_file(tc.data.text_path);
    if (tc.data.max_text_bytes > 0 && (int64_t)text.size() > tc.data.max_text_bytes) {
      // Cut at the last story boundary before the limit, so no story is split.
      size_t cut = text.rfind("<|endoftext|>", (size_t)tc.data.max_text_bytes);
      text.resize(cut == std::string::npos ? (size_t)tc.data.max_text_bytes : cut + 13);
    }
  }
  log << "data: " << text.size() << " bytes of " << (tc.data.source == "generated" ? "generated stories" : tc.data.text_path)
      << " (" << std::fixed << std::setprecision(1) << seconds_since(t0) << " s)\n";

  auto t1 = Clock::now();
  data::BpeTrainOptions bo;
  bo.vocab_size = (int)tc.data.vocab_size;
  data::BpeTrainStats st;
  out.tokenizer = data::Tokenizer::train(std::string_view(text), bo, &st);
  log << "tokenizer: BPE vocab " << out.tokenizer.vocab_size() << " (" << st.n_merges << " merges, "
      << st.n_unique_words << " distinct words) in " << std::setprecision(1) << seconds_since(t1) << " s\n";

  auto t2 = Clock::now();
  std::vector<int32_t> ids = out.tokenizer.encode(text);
  // 95/5 split at a story boundary: just after the first <|endoftext|> at or past 95% of the tokens.
  size_t split = ids.size() * 95 / 100;
  if (auto eot = out.tokenizer.find_token("<|endoftext|>")) {
    size_t k = split;
    while (k < ids.size() && ids[k] != *eot) k++;
    if (k + 1 < ids.size()) split = k + 1;
  }
  const int64_t V = out.tokenizer.vocab_size();
  std::span<const int32_t> all(ids);
  fs::remove_all(dir);
  fs::create_directories(dir);
  out.train_shards = data::write_shards((dir / "train").string(), all.subspan(0, split), V, 1 << 22);
  out.val_shards = data::write_shards((dir / "val").string(), all.subspan(split), V, 1 << 22);
  out.train_tokens = (int64_t)split;
  out.val_tokens = (int64_t)(ids.size() - split);
  { std::ofstream f(sig_path); f << sig << "\n"; }
  out.tokenizer.save(tok_path);
  log << "shards: " << out.train_tokens << " train + " << out.val_tokens << " val tokens ("
      << std::setprecision(2) << (double)text.size() / (double)ids.size() << " bytes/token) in "
      << std::setprecision(1) << seconds_since(t2) << " s -> " << dir.string() << "\n" << std::defaultfloat;
  return out;
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

// Mean main-model cross entropy over eval_batches validation batches (no tape; MTP and balance off).
double evaluate(Transformer& model, const std::vector<std::string>& val_shards, const TrainConfig& tc) {
  NoGradGuard no_grad;
  data::TokenLoader val(val_shards, {tc.batch_size, tc.seq_len, kValSeed, false});
  double sum = 0;
  for (int64_t i = 0; i < tc.eval_batches; i++) {
    Tensor x, y;
    to_tensors(val.next_batch(), tc.batch_size, tc.seq_len, x, y);
    sum += model.loss(x, y, 0.0, 0.0).main_loss.item();
  }
  return sum / (double)tc.eval_batches;
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

const std::vector<std::string> kColumns = {"step", "lr", "loss", "main_loss", "mtp_loss", "balance_loss", "grad_norm",
                                           "tokens_per_s", "max_load", "max_over_mean_load", "val_loss"};

}  // namespace

PretrainResult pretrain(const PretrainConfig& config, std::ostream& log, const PretrainOptions& options) {
  const auto t_start = Clock::now();
  const TrainConfig& tc = config.train;
  set_num_threads((int)tc.threads);
  fs::create_directories(tc.out_dir);
  PretrainResult res;
  res.out_dir = tc.out_dir;

  // ---- DATA_PREP ----
  PreparedData data = prepare_data(tc, log);
  res.train_tokens = data.train_tokens;
  res.val_tokens = data.val_tokens;

  // ---- MODEL ----
  ModelArgs args = config.model;
  args.vocab_size = data.tokenizer.vocab_size();
  args.validate(config.source);
  Rng rng(tc.seed);
  Transformer model(args, rng);
  NamedParameters params = model.named_parameters();
  res.vocab_size = args.vocab_size;
  res.n_parameters = model.num_parameters();
  res.ln_vocab = std::log((double)args.vocab_size);
  AdamWConfig ac;
  ac.lr = tc.lr;
  ac.weight_decay = tc.weight_decay;
  AdamW optimizer(params, ac);
  data::TokenLoader loader(data.train_shards, {tc.batch_size, tc.seq_len, tc.seed + 1, false});
  LrSchedule schedule = LrSchedule::warmup_cosine(tc.lr, tc.min_lr, tc.warmup_steps, tc.steps);
  log << "model: " << res.n_parameters << " parameters, " << args.n_layers << " layers (" << args.n_dense_layers
      << " dense), dim " << args.dim << ", " << args.n_routed_experts << "+" << args.n_shared_experts << " experts top-"
      << args.n_activated_experts << ", MTP " << args.n_mtp_modules << ", vocab " << args.vocab_size
      << " (ln V = " << std::setprecision(4) << res.ln_vocab << ")\n"
      << "train: " << tc.steps << " steps x " << tc.grad_accum << " x " << tc.batch_size << " x " << tc.seq_len
      << " tokens, " << schedule.describe() << ", " << num_threads() << " threads\n";

  // ---- RESUME ----
  const std::string ckpt_dir = (fs::path(tc.out_dir) / "checkpoint").string();
  TrainerState state;
  if (checkpoint_exists(ckpt_dir)) {
    load_checkpoint(ckpt_dir, model, &optimizer, state);
    if (state.loader) loader.restore(*state.loader);
    rng.set_state(state.rng);
    log << "resume: " << ckpt_dir << " at step " << state.step << " (" << state.tokens_seen << " tokens seen)\n";
  }
  res.start_step = state.step;
  MetricsLogger metrics((fs::path(tc.out_dir) / "metrics.csv").string(), kColumns);
  metrics.truncate_after((double)state.step);  // drop rows logged after the checkpoint (or a stale run's)

  auto save = [&]() {
    state.rng = rng.state();
    state.loader = loader.state();
    state.config_name = config.name;
    save_checkpoint(ckpt_dir, model, &optimizer, state);
  };

  // ---- LOOP ----
  ProgressBar bar(tc.steps, "pretrain", std::max<int64_t>(1, tc.steps / 20));
  const int64_t tokens_per_step = tc.grad_accum * tc.batch_size * tc.seq_len;
  double train_seconds = 0;
  int64_t steps_this_call = 0;
  double last_val = NAN;
  for (int64_t step = state.step; step < tc.steps; step++) {
    auto t0 = Clock::now();
    const double lr = schedule.lr_at(step);
    zero_grad(params);
    double loss = 0, main_loss = 0, mtp_loss = 0, bal_loss = 0;
    for (int64_t micro = 0; micro < tc.grad_accum; micro++) {
      Tensor x, y;
      to_tensors(loader.next_batch(), tc.batch_size, tc.seq_len, x, y);
      LossOutput lo = model.loss(x, y, tc.mtp_lambda, tc.balance_alpha);
      Tensor scaled = tc.grad_accum > 1 ? mul(lo.loss, 1.0 / (double)tc.grad_accum) : lo.loss;
      scaled.backward();
      const double inv = 1.0 / (double)tc.grad_accum;
      loss += lo.loss.item() * inv;
      main_loss += lo.main_loss.item() * inv;
      double m = 0;
      for (auto& l : lo.mtp_losses) m += l.item();
      if (!lo.mtp_losses.empty()) mtp_loss += m / (double)lo.mtp_losses.size() * inv;
      if (lo.balance_loss.defined()) bal_loss += lo.balance_loss.item() * inv;
    }
    const double gnorm = tc.grad_clip > 0 ? clip_grad_norm(params, tc.grad_clip) : grad_norm(params);
    if (!std::isfinite(gnorm) || !std::isfinite(loss)) {
      save();
      throw std::runtime_error("[pretrain] step " + std::to_string(step + 1) + ": non-finite loss " + format_number(loss) +
                               " or gradient norm " + format_number(gnorm) + " (checkpoint of the step before kept in " +
                               ckpt_dir + "; lower train.lr or raise train.warmup_steps)");
    }
    optimizer.step(lr);
    // Aux-loss-free balancing (DEEPSEEK.md §6) with the last micro-batch's load.
    double max_over_mean = NAN, max_load = NAN;
    load_balance(model.expert_loads(), max_over_mean, max_load);
    if (tc.bias_gamma > 0) model.update_gate_biases(tc.bias_gamma);
    state.step = step + 1;
    state.tokens_seen += tokens_per_step;
    const double dt = seconds_since(t0);
    train_seconds += dt;
    steps_this_call++;

    double val = NAN;
    if ((tc.eval_every > 0 && state.step % tc.eval_every == 0) || state.step == tc.steps) {
      val = evaluate(model, data.val_shards, tc);
      last_val = val;
    }
    metrics.log({(double)state.step, lr, loss, main_loss, mtp_loss, bal_loss, gnorm, (double)tokens_per_step / dt,
                 max_load, max_over_mean, val});
    if (steps_this_call == 1) res.first_loss = loss;
    res.final_loss = loss;
    res.final_main_loss = main_loss;
    if (options.progress) {
      std::ostringstream extra;
      extra << "lr " << std::scientific << std::setprecision(1) << lr;
      if (std::isfinite(val)) extra << "  val " << std::fixed << std::setprecision(3) << val;
      bar.update(state.step, state.tokens_seen, main_loss, extra.str());
    }
    const bool stop = options.stop_after_step > 0 && state.step >= options.stop_after_step;
    if ((tc.checkpoint_every > 0 && state.step % tc.checkpoint_every == 0) || state.step == tc.steps || stop) save();
    if (stop) break;
  }
  if (options.progress) bar.finish();
  res.steps_done = state.step;
  res.final_val_loss = last_val;
  res.tokens_per_s = train_seconds > 0 ? (double)(steps_this_call * tokens_per_step) / train_seconds : 0;

  // ---- END ----
  const bool finished = state.step >= tc.steps;
  if (finished && options.export_model) {
    MetricsTable mt = read_metrics_csv(metrics.path());
    std::vector<double> steps = mt.column("step"), main = mt.column("main_loss"), vals = mt.column("val_loss");
    std::vector<Series> series = {{"train (main CE)", steps, main, colors::blue}};
    Series vs{"val", {}, {}, colors::orange};
    for (size_t i = 0; i < steps.size(); i++)
      if (std::isfinite(vals[i])) vs.xs.push_back(steps[i]), vs.ys.push_back(vals[i]);
    if (!vs.xs.empty()) series.push_back(vs);
    LinePlotOptions lp;
    lp.title = "pretrain loss (" + config.name + ")";
    lp.y_label = "cross entropy (nats)";
    lp.reference = ReferenceLine{res.ln_vocab, "ln(V) chance"};
    write_line_plot_png((fs::path(tc.out_dir) / "loss.png").string(), series, lp);
    write_line_plot_png((fs::path(tc.out_dir) / "lr.png").string(), {{"lr", steps, mt.column("lr"), colors::green}},
                        "learning rate (" + schedule.describe() + ")");
    auto loads = model.expert_loads();
    if (!loads.empty() && !loads[0].empty()) {
      std::vector<double> l0(loads[0].begin(), loads[0].end());
      double mean = 0;
      for (double v : l0) mean += v / (double)l0.size();
      BarChartOptions bo;
      bo.title = "tokens per expert, " + model.moe_layer_names()[0] + ", last step";
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
  res.wall_s = seconds_since(t_start);
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
