// tests/train/test_checkpoint_integrity.cpp — a checkpoint knows what it belongs to: trainer_state.json records
// each file's size and FNV-1a checksum, the model's architecture and the tokenizer's hash, so loading refuses a
// flipped byte, another model's checkpoint, another tokenizer's checkpoint and NaN/Inf in the parameters or the
// optimizer moments, each with a message that names the file (and the tensor, the field, the hashes).
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "data/hash.h"
#include "models/json.h"
#include "tests/data/temp_dir.h"
#include "train/checkpoint.h"
#include "train/config_yaml.h"
#include "train/optim.h"
#include "train/pretrain.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

struct Setup {
  Tensor w, norm;
  NamedParameters params() { return {{"layers.0.attn.wq.weight", &w}, {"norm.weight", &norm}}; }
  explicit Setup(uint64_t seed) {
    Rng rng(seed);
    w = Tensor::randn({6, 5}, rng).requires_grad_(true);
    norm = Tensor::rand({5}, rng).requires_grad_(true);
  }
  void step(AdamW& opt, Rng& rng) {
    w.set_grad(Tensor::randn({6, 5}, rng));
    norm.set_grad(Tensor::randn({5}, rng));
    opt.step();
  }
};

void flip_byte(const std::string& path, size_t from_end) {
  std::string b = slurp(path);
  b[b.size() - from_end] ^= 0x20;
  spit(path, b);
}

// vocab 300, dim DIM, 1 dense + 1 MoE layer, no MTP: a pretrain run of a few steps.
std::string micro_yaml(const std::string& out_dir, int dim, const std::string& rope_theta = "10000.0") {
  return "model:\n"
         "  vocab_size: 300\n  dim: " + std::to_string(dim) + "\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n"
         "  n_heads: 2\n  q_lora_rank: 16\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n"
         "  v_head_dim: 8\n  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 32\n"
         "  score_func: sigmoid\n  gate_bias: true\n  rope_theta: " + rope_theta + "\n"
         "  max_batch_size: 4\n  max_seq_len: 32\n  original_seq_len: 32\n"
         "train:\n"
         "  seed: 3\n  batch_size: 2\n  seq_len: 32\n  steps: 4\n  lr: 1.0e-2\n  min_lr: 1.0e-3\n  warmup_steps: 1\n"
         "  eval_every: 100\n  eval_batches: 1\n  checkpoint_every: 100\n  threads: 1\n  sample_tokens: 0\n"
         "  out_dir: " + out_dir + "\n"
         "  data: {source: generated, n_stories: 60, vocab_size: 300}\n";
}

PretrainOptions stop_at(int64_t step) {
  PretrainOptions o;
  o.progress = false;
  o.export_model = false;
  o.samples = false;
  o.stop_after_step = step;
  return o;
}

}  // namespace

TEST_CASE("checkpoint integrity: a flipped byte in model.safetensors or optimizer.safetensors is a checksum error") {
  TempDir tmp("ckpt_flip");
  Setup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  Rng rng(2);
  a.step(opt, rng);
  const std::string dir = tmp.file("ckpt");
  save_checkpoint(dir, a.params(), &opt, TrainerState{});
  TrainerState got;
  load_checkpoint(dir, a.params(), &opt, got);  // intact: loads

  for (const std::string file : {"model.safetensors", "optimizer.safetensors"}) {
    save_checkpoint(dir, a.params(), &opt, TrainerState{});
    flip_byte(dir + "/" + file, 3);  // in the data region (the last tensor's bytes), the header still parses
    Setup b(7);
    const std::vector<float> before = b.w.to_f32_vector();
    const std::string e = error_of([&] { load_checkpoint(dir, b.params(), &opt, got); });
    INFO(e);
    CHECK(e == "[checkpoint] " + dir + "/" + file + ": checksum mismatch (file changed or corrupted since it was written)");
    CHECK(b.w.to_f32_vector() == before);  // nothing was loaded
  }
}

TEST_CASE("checkpoint integrity: NaN/Inf in a parameter or an optimizer moment is named with the tensor and element") {
  TempDir tmp("ckpt_nan");
  Setup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  Rng rng(2);
  a.step(opt, rng);
  const std::string dir = tmp.file("ckpt");
  TrainerState got;

  Tensor w = a.w;
  const float keep = w.data<float>()[17];
  w.data<float>()[17] = NAN;
  save_checkpoint(dir, a.params(), &opt, TrainerState{});
  std::string e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got); });
  INFO(e);
  CHECK(e == "[checkpoint] " + dir + "/model.safetensors: tensor 'layers.0.attn.wq.weight' holds NaN at element 17");
  w.data<float>()[17] = keep;

  Tensor m = opt.exp_avg(1);  // the norm's first moment (a handle on the optimizer's own tensor)
  m.data<float>()[2] = INFINITY;
  save_checkpoint(dir, a.params(), &opt, TrainerState{});
  e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got); });
  INFO(e);
  CHECK(e == "[checkpoint] " + dir + "/optimizer.safetensors: tensor 'exp_avg.norm.weight' holds inf at element 2");
}

TEST_CASE("checkpoint integrity: another architecture or another tokenizer is a named error") {
  TempDir tmp("ckpt_identity");
  Setup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  const std::string dir = tmp.file("ckpt");
  ModelArgs args;
  args.dim = 64;
  const data::Tokenizer tok_a = data::Tokenizer::train("the cat sat on the mat, the cat ate the rat", 270);
  const data::Tokenizer tok_b = data::Tokenizer::train("a dog and a log and a frog on a bog", 270);
  save_checkpoint(dir, a.params(), &opt, TrainerState{}, checkpoint_identity(args, &tok_a));
  TrainerState got;
  load_checkpoint(dir, a.params(), &opt, got, checkpoint_identity(args, &tok_a));

  ModelArgs other = args;
  other.dim = 32;
  other.rope_theta = 5000;
  std::string e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got, checkpoint_identity(other, &tok_a)); });
  INFO(e);
  CHECK(e.find("[checkpoint] " + dir + "/trainer_state.json: written for another model") == 0);
  CHECK(contains(e, "written for dim 64, this model has dim 32"));
  CHECK(contains(e, "rope_theta"));
  // Settings that do not change the model (the batch size of the KV cache, FP8 loading) are not its architecture.
  other = args;
  other.max_batch_size = 1;
  other.fp8_weights = "dequant";
  load_checkpoint(dir, a.params(), &opt, got, checkpoint_identity(other, &tok_a));

  e = error_of([&] { load_checkpoint(dir, a.params(), &opt, got, checkpoint_identity(args, &tok_b)); });
  INFO(e);
  CHECK(e == "[checkpoint] " + dir + "/trainer_state.json: written with tokenizer " + data::hash_hex(tok_a.hash()) +
                 ", this run's tokenizer is " + data::hash_hex(tok_b.hash()));
  // A caller that knows neither (a plain list of tensors) checks only the files.
  load_checkpoint(dir, a.params(), &opt, got);
}

TEST_CASE("checkpoint integrity: a checkpoint written before the integrity fields loads, with a warning") {
  TempDir tmp("ckpt_old");
  Setup a(1);
  AdamW opt(a.params(), AdamWConfig{1e-2});
  const std::string dir = tmp.file("ckpt");
  TrainerState st;
  st.step = 5;
  save_checkpoint(dir, a.params(), &opt, st);
  // Strip the new keys: what an older build wrote.
  Json j = Json::parse(slurp(dir + "/trainer_state.json"), "trainer_state.json");
  Json old = Json::object();
  for (const std::string key : {"format", "version", "config_name", "optimizer", "step", "tokens_seen", "rng", "loader", "extra"})
    old.set(key, j.at(key));
  spit(dir + "/trainer_state.json", old.dump(2));
  TrainerState got;
  std::ostringstream warn;
  std::streambuf* saved = std::cerr.rdbuf(warn.rdbuf());
  load_checkpoint(dir, a.params(), &opt, got);
  std::cerr.rdbuf(saved);
  CHECK(got.step == 5);
  CHECK(contains(warn.str(), "no checksums"));
}

TEST_CASE("checkpoint integrity: pretrain resume refuses a flipped byte and another model's checkpoint") {
  TempDir tmp("ckpt_pretrain");
  std::ostringstream log;
  const std::string run = tmp.file("run");
  PretrainConfig c64 = parse_pretrain_config(micro_yaml(run, 64), "micro.yaml");
  pretrain(c64, log, stop_at(1));
  REQUIRE(fs::exists(run + "/checkpoint/model.safetensors"));
  const std::string good = slurp(run + "/checkpoint/model.safetensors");

  flip_byte(run + "/checkpoint/model.safetensors", 11);
  std::string e = error_of([&] { pretrain(c64, log, stop_at(2)); });
  INFO(e);
  CHECK(e == "[checkpoint] " + run + "/checkpoint/model.safetensors: checksum mismatch (file changed or corrupted since it was written)");
  spit(run + "/checkpoint/model.safetensors", good);

  // A config with another dim in the same run directory: refused, saying what differs (before, the first tensor
  // whose shape differs was named; a change that keeps every shape, like rope_theta, resumed silently).
  PretrainConfig c32 = parse_pretrain_config(micro_yaml(run, 32), "micro.yaml");
  e = error_of([&] { pretrain(c32, log, stop_at(2)); });
  INFO(e);
  CHECK(contains(e, run + "/checkpoint/trainer_state.json: written for another model"));
  CHECK(contains(e, "written for dim 64, this model has dim 32"));
  PretrainConfig theta = parse_pretrain_config(micro_yaml(run, 64, "5000.0"), "micro.yaml");
  e = error_of([&] { pretrain(theta, log, stop_at(2)); });
  INFO(e);
  CHECK(contains(e, "written for rope_theta 10000, this model has rope_theta 5000"));
  // The right config still resumes.
  PretrainResult r = pretrain(c64, log, stop_at(2));
  CHECK(r.start_step == 1);
  CHECK(r.steps_done == 2);
}
