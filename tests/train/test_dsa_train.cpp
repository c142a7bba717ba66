// tests/train/test_dsa_train.cpp — a DSA model (model.index_topk > 0) pretrained in DeepSeek-V3.2's two
// stages (train/pretrain.h, PretrainStage): during the dense warm-up only attn.indexer.* moves (every other
// parameter and the gate-bias buffers stay bit-identical to their initial values), after it the main model
// trains too; metrics.csv's dsa_stage / indexer_kl_loss / indexer_recall / val_indexer_recall columns; a run
// stopped in the middle of the warm-up and resumed equals one that never stopped, bit for bit; and the two
// config errors of train.dsa_warmup_steps. What this is not: the indexer's math (tests/models/test_dsa.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "models/safetensors.h"
#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "train/metrics.h"
#include "train/pretrain.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// test_pretrain.cpp's micro model with DSA on: vocab 300, dim 32, 2 layers (1 dense + 1 MoE), 4+1 experts
// top-2, 1 MTP module, q_lora_rank 16 (DSA needs the q latent), an indexer of 2 heads x 8 dims (= dr) choosing
// 8 of up to 32 keys. 16 steps: 10 of dense warm-up, then 6 sparse.
std::string micro_dsa_yaml(const std::string& out_dir) {
  return "model:\n"
         "  vocab_size: 300\n  dim: 32\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n  n_heads: 2\n"
         "  q_lora_rank: 16\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n  v_head_dim: 8\n"
         "  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 32\n"
         "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
         "  index_n_heads: 2\n  index_head_dim: 8\n  index_topk: 8\n"
         "  max_batch_size: 4\n  max_seq_len: 32\n  original_seq_len: 32\n"
         "train:\n"
         "  seed: 3\n  batch_size: 4\n  seq_len: 32\n  steps: 16\n  dsa_warmup_steps: 10\n  lr: 1.0e-2\n"
         "  min_lr: 1.0e-3\n  warmup_steps: 1\n  bias_gamma: 1.0e-2\n"
         "  eval_every: 3\n  eval_batches: 2\n  checkpoint_every: 100\n  threads: 1\n  sample_tokens: 0\n"
         "  out_dir: " + out_dir + "\n"
         "  data: {source: generated, n_stories: 120, vocab_size: 300}\n";
}

PretrainOptions quiet() {
  PretrainOptions o;
  o.progress = false;
  o.export_model = false;
  o.samples = false;
  return o;
}

bool is_indexer(const std::string& name) { return name.find(".attn.indexer.") != std::string::npos; }

// The model pretrain() builds before its first step (the same args, vocabulary and seed), as name -> f32 values.
std::map<std::string, std::vector<float>> initial_tensors(const PretrainConfig& c, std::set<std::string>* buffer_names) {
  PreparedData data = open_prepared(c.train.out_dir + "/data");
  ModelArgs args = c.model;
  args.vocab_size = data.tokenizer.vocab_size();
  Rng rng(c.train.seed);
  Transformer model(args, rng);
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, p] : model.named_parameters_and_buffers()) out[name] = p->to_f32_vector();
  std::set<std::string> params;
  for (auto& [name, p] : model.named_parameters()) params.insert(name);
  for (auto& [name, v] : out)
    if (!params.count(name)) buffer_names->insert(name);
  return out;
}

// Which checkpoint tensors differ (in any bit) from the initial model: {indexer, other parameters, buffers}.
struct Moved {
  int64_t indexer = 0, indexer_total = 0, other = 0, other_total = 0, buffers = 0, buffers_total = 0;
};
Moved moved_since_init(const std::string& checkpoint, const std::map<std::string, std::vector<float>>& init,
                       const std::set<std::string>& buffer_names) {
  SafeTensorsFile f = read_safetensors(checkpoint);
  Moved m;
  for (auto& [name, v0] : init) {
    std::vector<float> v = to_f32(f.get(name));
    REQUIRE(v.size() == v0.size());
    bool same = std::memcmp(v.data(), v0.data(), v.size() * sizeof(float)) == 0;
    if (buffer_names.count(name)) {
      m.buffers_total++;
      m.buffers += !same;
    } else if (is_indexer(name)) {
      m.indexer_total++;
      m.indexer += !same;
    } else {
      m.other_total++;
      m.other += !same;
    }
  }
  return m;
}

}  // namespace

TEST_CASE("dsa pretrain: the warm-up moves only attn.indexer.*; the sparse stage trains the main model too") {
  TempDir dir("dsa_freeze");
  PretrainConfig c = parse_pretrain_config(micro_dsa_yaml(dir.file("run")), "micro_dsa.yaml");
  REQUIRE(c.model.index_topk == 8);
  REQUIRE(c.train.dsa_warmup_steps == 10);
  std::ostringstream log;
  PretrainOptions stop = quiet();
  stop.stop_after_step = 10;  // the last warm-up step
  PretrainResult r1 = pretrain(c, log, stop);
  REQUIRE(r1.steps_done == 10);
  std::set<std::string> buffer_names;
  auto init = initial_tensors(c, &buffer_names);
  const std::string ckpt = dir.file("run/checkpoint/model.safetensors");

  Moved warm = moved_since_init(ckpt, init, buffer_names);
  CHECK(warm.indexer_total == 3 * 5);  // wq_b, wk, k_norm.{weight,bias}, weights_proj in layers.0, layers.1, mtp.0
  CHECK(warm.buffers_total == 2);      // layers.1.ffn.gate.bias and mtp.0.ffn.gate.bias
  CHECK(warm.other_total > 20);
  CHECK(warm.other == 0);    // the main model is frozen, bit for bit
  CHECK(warm.buffers == 0);  // no bias updates during the warm-up
  CHECK(warm.indexer == warm.indexer_total);  // every indexer tensor learned

  PretrainResult r2 = pretrain(c, log, quiet());  // resume: the 6 sparse steps
  CHECK(r2.start_step == 10);
  CHECK(r2.steps_done == 16);
  Moved sparse = moved_since_init(ckpt, init, buffer_names);
  CHECK(sparse.indexer == sparse.indexer_total);
  CHECK(sparse.other == sparse.other_total);  // every main-model parameter trained in the sparse stage
  CHECK(sparse.buffers == sparse.buffers_total);
}

TEST_CASE("dsa pretrain: metrics.csv — dsa_stage 0 then 1, finite indexer KL, recall in [0,1], KL falls in the warm-up") {
  TempDir dir("dsa_metrics");
  std::string yaml = micro_dsa_yaml(dir.file("run"));
  PretrainConfig c = parse_pretrain_config(yaml, "micro_dsa.yaml");
  std::ostringstream log;
  PretrainResult r = pretrain(c, log, quiet());
  CHECK(r.steps_done == 16);
  CHECK(std::isfinite(r.final_loss));
  CHECK(std::isfinite(r.final_val_loss));
  MetricsTable m = read_metrics_csv(dir.file("run/metrics.csv"));
  REQUIRE(m.rows.size() == 16);
  std::vector<double> stage = m.column("dsa_stage"), kl = m.column("indexer_kl_loss"), rec = m.column("indexer_recall");
  std::vector<double> val_rec = m.column("val_indexer_recall"), main = m.column("main_loss"), loss = m.column("loss");
  for (size_t i = 0; i < 16; i++) {
    CAPTURE(i);
    CHECK(stage[i] == (i < 10 ? 0.0 : 1.0));
    CHECK(std::isfinite(kl[i]));
    CHECK(kl[i] >= 0);  // a KL
    CHECK(rec[i] >= 0);
    CHECK(rec[i] <= 1);
    // warm-up: the logged loss is λ_I · KL (λ_I = 1); sparse: LM terms + λ_I · KL
    if (i < 10) CHECK(loss[i] == doctest::Approx(kl[i]).epsilon(1e-5));
    if (i >= 10) CHECK(loss[i] > main[i]);
  }
  for (size_t i : {2, 5, 8, 11, 14, 15}) {  // eval_every 3 and the last step
    CAPTURE(i);
    CHECK(std::isfinite(val_rec[i]));
    CHECK(val_rec[i] >= 0);
    CHECK(val_rec[i] <= 1);
  }
  CHECK(std::isnan(val_rec[0]));
  CHECK(std::isnan(val_rec[9]));
  // the indexer learns during the warm-up (the model under it is frozen: the target does not move)
  CHECK(kl[9] < kl[0]);
  // (measured: 0.367 at step 1, 0.245 at step 10; each step is a new batch, hence the margin). The recall is
  // not checked here: the frozen random model attends almost evenly, so its top-8 is mostly noise (0.585 ->
  // 0.598); ch04_dsa shows it rising on a setting where the attention is concentrated.
  CHECK(kl[9] < 0.8 * kl[0]);
}

TEST_CASE("dsa pretrain: stopped in the middle of the warm-up and resumed == straight, bit for bit") {
  TempDir dir("dsa_resume");
  std::ostringstream log;
  PretrainConfig straight = parse_pretrain_config(micro_dsa_yaml(dir.file("a")), "micro_dsa.yaml");
  PretrainResult ra = pretrain(straight, log, quiet());

  PretrainConfig split = parse_pretrain_config(micro_dsa_yaml(dir.file("b")), "micro_dsa.yaml");
  PretrainOptions stop = quiet();
  stop.stop_after_step = 4;  // the warm-up is steps 1..10
  PretrainResult r1 = pretrain(split, log, stop);
  CHECK(r1.steps_done == 4);
  PretrainResult r2 = pretrain(split, log, quiet());
  CHECK(r2.start_step == 4);
  CHECK(r2.steps_done == 16);
  CHECK(r2.final_loss == ra.final_loss);  // exact
  CHECK(r2.final_val_loss == ra.final_val_loss);
  CHECK(slurp(dir.file("a/checkpoint/model.safetensors")) == slurp(dir.file("b/checkpoint/model.safetensors")));
  CHECK(slurp(dir.file("a/checkpoint/optimizer.safetensors")) == slurp(dir.file("b/checkpoint/optimizer.safetensors")));
  MetricsTable ma = read_metrics_csv(dir.file("a/metrics.csv")), mb = read_metrics_csv(dir.file("b/metrics.csv"));
  REQUIRE(mb.rows.size() == 16);
  CHECK(ma.column("loss") == mb.column("loss"));
  CHECK(ma.column("indexer_kl_loss") == mb.column("indexer_kl_loss"));
  CHECK(ma.column("dsa_stage") == mb.column("dsa_stage"));
  CHECK(ma.column("indexer_recall") == mb.column("indexer_recall"));
}

TEST_CASE("dsa pretrain config: dsa_warmup_steps without DSA, or >= steps, are errors naming the file and the key") {
  TempDir dir("dsa_cfg");
  std::string path = dir.file("bad.yaml");
  std::string good = micro_dsa_yaml("runs/x");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    spit(path, s);
    return error_of([&] { load_pretrain_config(path); });
  };
  CHECK(with("  index_topk: 8\n", "") ==
        "[config] " + path + ": train.dsa_warmup_steps needs a DSA model (model.index_topk > 0)");
  CHECK(with("  dsa_warmup_steps: 10", "  dsa_warmup_steps: 16") ==
        "[config] " + path + ": train.dsa_warmup_steps (16) must be < train.steps (16)");
  CHECK(with("  dsa_warmup_steps: 10", "  dsa_warmup_steps: 20") ==
        "[config] " + path + ": train.dsa_warmup_steps (20) must be < train.steps (16)");
  CHECK(with("  dsa_warmup_steps: 10", "  dsa_warmup_steps: -1").find("[config] " + path + ": train.dsa_warmup_steps") == 0);
  // a DSA model without a warm-up is fine (sparse from step 0), and so is the good file
  CHECK(with("  dsa_warmup_steps: 10", "  dsa_warmup_steps: 0") == "");
  CHECK(with("  steps: 16", "  steps: 16") == "");
}
