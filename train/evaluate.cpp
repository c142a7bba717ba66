// train/evaluate.cpp — see evaluate.h.
#include "train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "data/shards.h"
#include "autograd/node.h"
#include "models/transformer.h"

namespace fs = std::filesystem;

namespace sg {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void fail(const char* who, const std::string& message) {
  throw std::runtime_error(std::string("[") + who + "] " + message);
}

}  // namespace

std::vector<std::string> find_eval_shards(const std::string& data_dir) {
  if (!fs::is_directory(data_dir)) fail("eval", data_dir + ": not a directory");
  std::vector<std::string> shards = data::list_shards(data_dir);
  if (shards.empty() && fs::is_directory(fs::path(data_dir) / "val")) shards = data::list_shards((fs::path(data_dir) / "val").string());
  if (shards.empty()) fail("eval", data_dir + ": no shard_*.bin files (nor in " + data_dir + "/val); make them with `seekgrad prepare`");
  return shards;
}

EvalResult evaluate_lm(Transformer& model, const std::vector<std::string>& shards, const EvalOptions& opt) {
  const auto t0 = Clock::now();
  if (shards.empty()) fail("eval", "no shards given");
  if (opt.seq_len <= 0 || opt.batch_size <= 0 || opt.batches <= 0)
    fail("eval", "--seq-len, --batch-size and --batches must be > 0");
  if (opt.seq_len > model.args.max_seq_len)
    fail("eval", "--seq-len " + std::to_string(opt.seq_len) + " exceeds the model's max_seq_len " +
                     std::to_string(model.args.max_seq_len));
  for (const std::string& s : shards) {
    data::ShardHeader h = data::read_shard_header(s);
    if ((int64_t)h.vocab_size > model.args.vocab_size)
      fail("eval", s + " has vocab_size " + std::to_string(h.vocab_size) + " but the model's vocab_size is " +
                       std::to_string(model.args.vocab_size) + " (a tokenizer this model was not trained with)");
  }
  data::LoaderConfig lc;
  lc.seq_len = opt.seq_len;
  lc.batch_size = opt.batch_size;
  lc.seed = opt.seed;
  int64_t windows = 0;
  {
    data::TokenLoader probe(shards, lc);
    windows = probe.windows_per_epoch();
  }
  // A small validation set: smaller batches rather than none; never a window twice.
  if (windows < lc.batch_size) lc.batch_size = windows;
  data::TokenLoader loader(shards, lc);
  const int64_t B = lc.batch_size, T = lc.seq_len;
  const int64_t n = std::min(opt.batches, windows / B);

  EvalResult r;
  r.shards = shards;
  NoGradGuard no_grad;
  double sum = 0;
  std::vector<double> mtp_sum(model.mtp.size(), 0.0);
  const bool has_dsa = model.args.index_topk > 0;
  double recall_sum = 0;
  for (int64_t b = 0; b < n; b++) {
    std::vector<int32_t> batch = loader.next_batch();  // [B*(T+1)]
    std::vector<int64_t> x(B * T), y(B * T);
    for (int64_t i = 0; i < B; i++)
      for (int64_t t = 0; t < T; t++) {
        x[i * T + t] = batch[i * (T + 1) + t];
        y[i * T + t] = batch[i * (T + 1) + t + 1];
      }
    // A DSA model runs its sparse forward as in inference (the same logits), with the recall measured.
    LossOptions lopt;
    lopt.train.dsa = has_dsa;
    lopt.train.dsa_stage = DSAStage::sparse;
    lopt.train.measure_recall = has_dsa;
    LossOutput lo = model.loss(Tensor::from_vector(x, {B, T}), Tensor::from_vector(y, {B, T}), lopt);
    if (has_dsa) recall_sum += lo.indexer_recall;
    sum += lo.main_loss.item();
    for (size_t k = 0; k < lo.mtp_losses.size(); k++) mtp_sum[k] += lo.mtp_losses[k].item();
  }
  r.batches = n;
  r.tokens = n * B * T;
  r.loss = sum / (double)n;
  r.perplexity = std::exp(r.loss);
  for (double s : mtp_sum) r.mtp_losses.push_back(s / (double)n);
  if (has_dsa) r.indexer_recall = recall_sum / (double)n;
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace sg
