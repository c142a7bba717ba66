// train/evaluate.h — the one language-model evaluation: mean cross-entropy of the main head (and of each
// MTP depth) over windows of token shards, with no tape. `seekgrad eval` and the trainer's evaluation
// points (train/pretrain.h) both call evaluate_lm().
//
// What this is not: a task-accuracy evaluation (problems with verifiable answers: train/reasoning_eval.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace sg {

struct Transformer;

struct EvalOptions {
  std::string model_dir, data_dir;  // data_dir: a folder of shard_*.bin (or a prepare DIR: its val/)
  int64_t batches = 20, seq_len = 128, batch_size = 8;
  uint64_t seed = 0;
};

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats per token) of the main head
  double perplexity = 0;  // exp(loss)
  std::vector<double> mtp_losses;  // per MTP depth, when the model has MTP modules
  double indexer_recall = NAN;     // DSA models (index_topk > 0): the indexer's recall of the dense attention's
                                   // top-k keys (models/dsa.h indexer_recall), mean over the batches; else NaN
  int64_t batches = 0, tokens = 0;
  double seconds = 0;
  std::vector<std::string> shards;
};

// The shard files of a data folder: its shard_*.bin, else those of its val/ subfolder.
std::vector<std::string> find_eval_shards(const std::string& data_dir);
// Under NoGradGuard. The batches are windows of the shards in the loader's seeded epoch order; fewer
// than asked when the shards hold fewer (never the same window twice).
EvalResult evaluate_lm(Transformer& model, const std::vector<std::string>& shards, const EvalOptions& opt);

}  // namespace sg
