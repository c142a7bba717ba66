// tests/train/test_thread_determinism.cpp — "same seed => same numbers on any thread count", end to end:
// one forward + backward of a small DeepSeek-V3-shaped Transformer (MLA with q-LoRA, DeepSeekMoE, MTP) gives
// every gradient bit for bit the same with 1, 2, 3 and 4 threads, and a 6-step sg::pretrain with 1 and 2
// threads ends with the same loss and a byte-identical checkpoint.
//
// The model is just big enough that the kernels actually split their work over threads (GEMMs over
// 1 MFLOP per thread, weight gradients with K = 512 tokens, rows of norms and softmaxes over ~16K
// values), so a kernel whose sums depend on the number of threads shows up here.
//
// The same for a DSA (V3.2) model (indexer, top-k selection, sparse attention, the indexer KL).
//
// What this is not: a test of any one kernel (tests/ops/ holds those, one per kernel).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/runtime.h"
#include "models/transformer.h"
#include "ops/elementwise.h"
#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "train/pretrain.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::TempDir;

namespace {

// Sets the thread count for a scope and puts the old one back.
class Threads {
 public:
  explicit Threads(int n) : prev_(num_threads()) { set_num_threads(n); }
  ~Threads() { set_num_threads(prev_); }

 private:
  int prev_;
};

// dim 64, 2 layers (1 dense + 1 MoE), 4+1 experts top-2 with the V3 sigmoid gate and bias, 1 MTP module.
ModelArgs small_args() {
  ModelArgs a;
  a.vocab_size = 256;
  a.dim = 64;
  a.inter_dim = 128;
  a.moe_inter_dim = 64;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 4;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.n_expert_groups = 2;
  a.n_limited_groups = 1;
  a.score_func = "sigmoid";
  a.route_scale = 2.5;
  a.gate_bias = true;
  a.q_lora_rank = 32;
  a.kv_lora_rank = 32;
  a.qk_nope_head_dim = 16;
  a.qk_rope_head_dim = 8;
  a.v_head_dim = 16;
  a.max_seq_len = 128;
  a.original_seq_len = 128;
  a.n_mtp_modules = 1;
  return a;
}

struct Grads {
  std::vector<std::string> names;
  std::vector<std::vector<char>> bytes;  // each gradient's raw f32 bytes
  std::vector<char> loss;
};

std::vector<char> raw_bytes(const Tensor& t) {
  Tensor c = t.clone_data();
  std::vector<char> b(c.numel() * dtype_size(c.dtype()));
  std::memcpy(b.data(), c.raw_data(), b.size());
  return b;
}

// One forward + backward of a freshly built model (seed 11) on a fixed [4, 128] batch, with `threads`
// threads. With `dsa`: V3.2 DSA blocks (a 4-head indexer picking 32 of up to 128 keys), in the sparse
// training stage, backward of the LM total plus the indexer KL.
Grads forward_backward(int threads, bool dsa) {
  Threads guard(threads);
  ModelArgs a = small_args();
  if (dsa) {
    a.index_n_heads = 4;
    a.index_head_dim = 16;
    a.index_topk = 32;
  }
  Rng rng(11);
  Transformer m(a, rng);
  Tensor tokens = Tensor::randint({4, 128}, rng, 0, a.vocab_size);
  Tensor targets = Tensor::randint({4, 128}, rng, 0, a.vocab_size);
  LossOptions o;
  o.mtp_lambda = 0.3;
  o.balance_alpha = 0.01;
  o.train.dsa = dsa;
  o.train.dsa_stage = DSAStage::sparse;
  LossOutput lo = m.loss(tokens, targets, o);
  Tensor total = dsa ? lo.loss + lo.indexer_loss : lo.loss;
  total.backward();
  Grads g;
  g.loss = raw_bytes(total);
  for (auto& [name, t] : m.named_parameters()) {
    REQUIRE_MESSAGE(t->grad().defined(), name << " has no gradient");
    g.names.push_back(name);
    g.bytes.push_back(raw_bytes(t->grad()));
  }
  return g;
}

void check_same_gradients_on_1_to_4_threads(bool dsa) {
  const Grads one = forward_backward(1, dsa);
  REQUIRE(one.names.size() > 30);
  for (int threads : {2, 3, 4}) {
    CAPTURE(threads);
    const Grads g = forward_backward(threads, dsa);
    CHECK(g.loss == one.loss);
    REQUIRE(g.names == one.names);
    int differ = 0;
    for (size_t i = 0; i < one.names.size(); i++) {
      const bool same = g.bytes[i] == one.bytes[i];
      differ += !same;
      CHECK_MESSAGE(same, one.names[i] << " differs between 1 and " << threads << " threads");
    }
    CHECK(differ == 0);
  }
}

}  // namespace

TEST_CASE("thread determinism: a Transformer's forward + backward gives bit-identical gradients on 1..4 threads") {
  check_same_gradients_on_1_to_4_threads(false);
}

TEST_CASE("thread determinism: the same for a DSA (V3.2) model, sparse stage, LM loss + indexer KL") {
  check_same_gradients_on_1_to_4_threads(true);
}

namespace {

// Like tests/train/test_pretrain.cpp's micro model, a little wider (dim 64, 8 x 64 = 512 tokens a
// micro-batch, 2 micro-batches a step) so that its GEMMs are split over threads.
std::string small_yaml(const std::string& out_dir, int threads) {
  return "model:\n"
         "  vocab_size: 300\n  dim: 64\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 128\n  n_heads: 2\n"
         "  q_lora_rank: 32\n  kv_lora_rank: 32\n  qk_nope_head_dim: 16\n  qk_rope_head_dim: 8\n  v_head_dim: 16\n"
         "  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 64\n"
         "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
         "  max_batch_size: 8\n  max_seq_len: 64\n  original_seq_len: 64\n"
         "train:\n"
         "  seed: 3\n  batch_size: 8\n  seq_len: 64\n  steps: 6\n  lr: 1.0e-2\n  min_lr: 1.0e-3\n  warmup_steps: 2\n"
         "  grad_accum: 2\n  eval_every: 3\n  eval_batches: 1\n  checkpoint_every: 100\n  sample_tokens: 0\n"
         "  threads: " + std::to_string(threads) + "\n"
         "  out_dir: " + out_dir + "\n"
         "  data: {source: generated, n_stories: 200, vocab_size: 300}\n";
}

PretrainOptions quiet() {
  PretrainOptions o;
  o.progress = false;
  o.export_model = false;
  o.samples = false;
  return o;
}

}  // namespace

TEST_CASE("thread determinism: 6 pretraining steps on 1 and 2 threads end in the same loss and checkpoint bytes") {
  Threads restore(num_threads());  // train.threads calls set_num_threads; put the test's setting back
  TempDir dir("determinism");
  std::vector<PretrainResult> results;
  std::vector<std::string> checkpoints;
  for (int threads : {1, 2}) {
    const std::string out = dir.file("run" + std::to_string(threads));
    std::ostringstream log;
    results.push_back(pretrain(parse_pretrain_config(small_yaml(out, threads), "small.yaml"), log, quiet()));
    CHECK(num_threads() == threads);
    checkpoints.push_back(slurp(out + "/checkpoint/model.safetensors"));
  }
  CHECK(results[0].steps_done == 6);
  CHECK(std::isfinite(results[0].final_loss));
  CHECK(results[0].final_loss < results[0].first_loss);
  CHECK(results[1].final_loss == results[0].final_loss);
  CHECK(results[1].final_val_loss == results[0].final_val_loss);
  REQUIRE(checkpoints[0].size() > 100000);
  CHECK(checkpoints[1].size() == checkpoints[0].size());
  CHECK_MESSAGE(checkpoints[1] == checkpoints[0], "checkpoint/model.safetensors differs between 1 and 2 threads");
}
