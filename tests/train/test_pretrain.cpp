// tests/train/test_pretrain.cpp — the trainer's YAML (errors name the file and the key) and the PRETRAIN
// stage end to end on a micro model: it runs, the loss falls and stays finite, metrics.csv has one row
// per step, and a run stopped at step 3 and resumed ends bit-identical to one that never stopped.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>

#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "train/metrics.h"
#include "autograd/node.h"
#include "models/safetensors.h"
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

// vocab 300, dim 32, 2 layers (1 dense + 1 MoE), 4+1 experts top-2, 1 MTP module.
std::string micro_yaml(const std::string& out_dir) {
  return "model:\n"
         "  vocab_size: 300\n  dim: 32\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n  n_heads: 2\n"
         "  q_lora_rank: 16\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n  v_head_dim: 8\n"
         "  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 32\n"
         "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
         "  max_batch_size: 4\n  max_seq_len: 32\n  original_seq_len: 32\n"
         "train:\n"
         "  seed: 3\n  batch_size: 4\n  seq_len: 32\n  steps: 6\n  lr: 1.0e-2\n  min_lr: 1.0e-3\n  warmup_steps: 1\n"
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

}  // namespace

TEST_CASE("pretrain config: a valid file parses, every field lands") {
  PretrainConfig c = parse_pretrain_config(micro_yaml("runs/x"), "micro.yaml");
  CHECK(c.name == "micro");
  CHECK(c.model.dim == 32);
  CHECK(c.model.score_func == "sigmoid");
  CHECK(c.model.gate_bias);
  CHECK(c.model.n_mtp_modules == 1);
  CHECK(c.train.lr == doctest::Approx(1e-2));
  CHECK(c.train.data.n_stories == 120);
  CHECK(c.train.out_dir == "runs/x");
}

TEST_CASE("pretrain config: unknown keys and bad values are errors naming the file and the key") {
  TempDir dir("cfg");
  std::string path = dir.file("bad.yaml");
  std::string good = micro_yaml("runs/x");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    spit(path, s);
    return error_of([&] { load_pretrain_config(path); });
  };
  CHECK(with("  dim: 32", "  dimm: 32") == "[config] " + path + ": key 'model.dimm' is not a known key");
  CHECK(with("  lr: 1.0e-2", "  lr: abc") == "[config] " + path + ": train.lr must be a positive number, got 'abc'");
  CHECK(with("  lr: 1.0e-2", "  lr: -1") == "[config] " + path + ": train.lr must be a positive number, got '-1'");
  CHECK(with("  steps: 6", "  steps: 2.5") == "[config] " + path + ": train.steps must be a positive integer, got '2.5'");
  CHECK(with("n_stories: 120", "n_storys: 120") == "[config] " + path + ": key 'train.data.n_storys' is not a known key");
  CHECK(with("source: generated", "source: web") ==
        "[config] " + path + ": train.data.source must be 'generated' or 'text', got 'web'");
  CHECK(with("  gate_bias: true", "  gate_bias: maybe") == "[config] " + path + ": model.gate_bias must be true or false, got 'maybe'");
  CHECK(with("model:", "modle:").find("key 'modle' is not a known key") != std::string::npos);
  // AdamW moment storage (train.moments: f32 | bf16).
  CHECK(with("  lr: 1.0e-2", "  lr: 1.0e-2\n  moments: fp16") ==
        "[config] " + path + ": train.moments must be 'f32' or 'bf16', got 'fp16'");
  std::string bf = good;
  spit(path, bf.replace(bf.find("  lr: 1.0e-2"), 12, "  lr: 1.0e-2\n  moments: bf16"));
  CHECK(load_pretrain_config(path).train.moments == "bf16");
  CHECK(parse_pretrain_config(good, "micro.yaml").train.moments == "f32");
  // ModelArgs::validate names the file too.
  std::string e = with("  n_routed_experts: 4", "  n_routed_experts: 3\n  n_expert_groups: 2");
  CHECK(e.find("[config] " + path) == 0);
  CHECK(error_of([&] { load_pretrain_config(dir.file("missing.yaml")); }) == "[config] " + dir.file("missing.yaml") + ": cannot open");
  // A key given twice (yaml-cpp keeps both, the last would silently win), in a section and at the top.
  CHECK(with("  dim: 32", "  dim: 32\n  dim: 64") ==
        "[config] " + path + ": key 'model.dim' appears twice (line 4 repeats it); give each key once");
  CHECK(with("  steps: 6", "  steps: 6\n  steps: 7").find("key 'train.steps' appears twice") != std::string::npos);
  CHECK(with("train:\n", "model: {dim: 8}\ntrain:\n").find("key 'model' appears twice") != std::string::npos);
  CHECK(with("  data: {source: generated,", "  data: {source: text, source: generated,")
            .find("key 'train.data.source' appears twice") != std::string::npos);
  // A directory where the file should be says so.
  CHECK(error_of([&] { load_pretrain_config(dir.path.string()); }) == "[config] " + dir.path.string() + ": is a directory; give the YAML config file");
  // train.device: cpu or cuda.
  CHECK(with("  threads: 1", "  threads: 1\n  device: gpu") ==
        "[config] " + path + ": train.device must be 'cpu' or 'cuda', got 'gpu'");
}

TEST_CASE("pretrain: 6 steps on a micro model — finite, falling loss, metrics.csv rows, checkpoint") {
  TempDir dir("pretrain");
  PretrainConfig c = parse_pretrain_config(micro_yaml(dir.file("run")), "micro.yaml");
  std::ostringstream log;
  PretrainResult r = pretrain(c, log, quiet());
  CHECK(r.steps_done == 6);
  CHECK(r.vocab_size <= 300);
  CHECK(std::isfinite(r.final_loss));
  CHECK(r.final_loss < r.first_loss);
  CHECK(r.final_main_loss < r.ln_vocab);
  CHECK(std::isfinite(r.final_val_loss));
  MetricsTable m = read_metrics_csv(dir.file("run/metrics.csv"));
  REQUIRE(m.rows.size() == 6);
  CHECK(m.column("step").back() == 6);
  CHECK(std::isfinite(m.column("val_loss")[2]));  // eval_every 3
  CHECK(std::isnan(m.column("val_loss")[0]));
  CHECK(std::filesystem::exists(dir.file("run/checkpoint/model.safetensors")));
  CHECK(std::filesystem::exists(dir.file("run/data/tokenizer.bpe")));
}

TEST_CASE("pretrain: 3 steps + resume + 3 steps == 6 steps straight, bit for bit") {
  TempDir dir("resume");
  std::ostringstream log;
  PretrainConfig straight = parse_pretrain_config(micro_yaml(dir.file("a")), "micro.yaml");
  PretrainResult ra = pretrain(straight, log, quiet());

  PretrainConfig split = parse_pretrain_config(micro_yaml(dir.file("b")), "micro.yaml");
  PretrainOptions stop = quiet();
  stop.stop_after_step = 3;
  PretrainResult r1 = pretrain(split, log, stop);
  CHECK(r1.steps_done == 3);
  PretrainResult r2 = pretrain(split, log, quiet());
  CHECK(r2.start_step == 3);
  CHECK(r2.steps_done == 6);
  CHECK(r2.final_loss == ra.final_loss);  // exact
  CHECK(r2.final_val_loss == ra.final_val_loss);
  CHECK(slurp(dir.file("a/checkpoint/model.safetensors")) == slurp(dir.file("b/checkpoint/model.safetensors")));
  CHECK(slurp(dir.file("a/checkpoint/optimizer.safetensors")) == slurp(dir.file("b/checkpoint/optimizer.safetensors")));
  MetricsTable ma = read_metrics_csv(dir.file("a/metrics.csv")), mb = read_metrics_csv(dir.file("b/metrics.csv"));
  REQUIRE(mb.rows.size() == 6);
  CHECK(ma.column("loss") == mb.column("loss"));
}

TEST_CASE("pretrain: bf16 AdamW moments (train.moments: bf16) — resume == straight, BF16 state, near the f32 run") {
  TempDir dir("resume_bf16");
  std::ostringstream log;
  auto yaml = [&](const std::string& out, bool bf16) {
    std::string s = micro_yaml(dir.file(out));
    if (bf16) s.replace(s.find("  lr: 1.0e-2"), 12, "  lr: 1.0e-2\n  moments: bf16");
    return parse_pretrain_config(s, "micro.yaml");
  };
  PretrainResult rf = pretrain(yaml("f", false), log, quiet());
  PretrainResult ra = pretrain(yaml("a", true), log, quiet());
  PretrainConfig split = yaml("b", true);
  PretrainOptions stop = quiet();
  stop.stop_after_step = 3;
  pretrain(split, log, stop);
  PretrainResult r2 = pretrain(split, log, quiet());
  CHECK(r2.start_step == 3);
  CHECK(r2.final_loss == ra.final_loss);  // exact
  CHECK(slurp(dir.file("a/checkpoint/model.safetensors")) == slurp(dir.file("b/checkpoint/model.safetensors")));
  CHECK(slurp(dir.file("a/checkpoint/optimizer.safetensors")) == slurp(dir.file("b/checkpoint/optimizer.safetensors")));
  const SafeTensorsFile opt = read_safetensors(dir.file("a/checkpoint/optimizer.safetensors"));
  int bf16_tensors = 0, f32_tensors = 0;
  for (const StTensor& t : opt.tensors) {
    if (t.name.rfind("exp_avg", 0) != 0) continue;
    (t.dtype == StDType::BF16 ? bf16_tensors : f32_tensors)++;
  }
  CHECK(bf16_tensors > 0);
  CHECK(f32_tensors == 0);
  MESSAGE("micro pretrain 6 steps: final loss f32 moments " << rf.final_loss << ", bf16 moments " << ra.final_loss);
  CHECK(std::fabs(ra.final_loss - rf.final_loss) < 1e-3 * rf.final_loss);  // measured 6.84766 vs 6.84764
}

TEST_CASE("pretrain: `seekgrad prepare` once, then train on it (train.data.dir) == a run that prepares its own") {
  TempDir dir("prepared");
  std::ostringstream log;
  PretrainConfig own = parse_pretrain_config(micro_yaml(dir.file("own")), "micro.yaml");
  PretrainResult r_own = pretrain(own, log, quiet());

  // the same preparation, made by the prepare path into a directory of its own
  PrepareOptions po;
  po.generated_stories = 120;
  po.seed = 3;  // train.seed: the generated corpus is seeded by it
  po.vocab_size = 300;
  po.val_fraction = 0.05;
  po.out_dir = dir.file("corpus");
  prepare_data(po);
  std::string yaml = micro_yaml(dir.file("shared"));
  yaml.replace(yaml.find("  data: {"), std::string("  data: {").size(), "  data: {dir: " + dir.file("corpus") + ", ");
  PretrainConfig shared = parse_pretrain_config(yaml, "micro.yaml");
  CHECK(shared.train.data.dir == dir.file("corpus"));
  PretrainResult r_shared = pretrain(shared, log, quiet());
  CHECK(r_shared.final_loss == r_own.final_loss);  // exact: the same tokens in the same order
  CHECK(r_shared.final_val_loss == r_own.final_val_loss);
  CHECK(!std::filesystem::exists(dir.file("shared/data")));  // nothing prepared again
  // and a second config trains on the same corpus
  CHECK(log.str().find("data: " + dir.file("corpus")) != std::string::npos);

  // a directory that is not a complete preparation is named with how to make it
  std::filesystem::create_directories(dir.file("empty"));
  std::string bad = micro_yaml(dir.file("bad"));
  bad.replace(bad.find("  data: {"), std::string("  data: {").size(), "  data: {dir: " + dir.file("empty") + ", ");
  std::string e = error_of([&] { pretrain(parse_pretrain_config(bad, "micro.yaml"), log, quiet()); });
  CHECK(e.find("[prepare] " + dir.file("empty") + ": no prepare.json") == 0);
  CHECK(e.find("seekgrad prepare") != std::string::npos);
}

TEST_CASE("pretrain: aux-loss-free balancing uses the load of ALL micro-batches of a step") {
  TempDir dir("accum");
  std::string yaml = micro_yaml(dir.file("run"));
  yaml.replace(yaml.find("  steps: 6"), std::string("  steps: 6").size(), "  steps: 1\n  grad_accum: 3\n  bias_gamma: 0.5");
  PretrainConfig c = parse_pretrain_config(yaml, "micro.yaml");
  std::ostringstream log;
  PrepareOptions po;
  po.generated_stories = 120;
  po.seed = 3;
  po.vocab_size = 300;
  po.val_fraction = 0.05;
  po.out_dir = dir.file("corpus");
  prepare_data(po);
  PreparedData data = open_prepared(dir.file("corpus"));
  ModelArgs args = c.model;
  args.vocab_size = data.tokenizer.vocab_size();
  Rng rng(c.train.seed);
  Transformer model(args, rng);
  PretrainStage stage(model, c.train, data);
  // three micro-batches of step 0, each one's load measured on its own (under no_grad: same routing)
  std::vector<std::vector<int64_t>> want;
  for (int micro = 0; micro < 3; micro++) {
    stage.make_batch(0);
    stage.batch_loss(0);
    NoGradGuard ng;
    add_expert_loads(want, model.loss(stage.tokens(), stage.targets(), 0.0, 0.0).expert_loads);
  }
  REQUIRE(want.size() == 2);  // layers.1.ffn and mtp.0.ffn
  CHECK(stage.step_loads() == want);
  int64_t total = 0;
  for (int64_t l : want[0]) total += l;
  CHECK(total == 3 * c.train.batch_size * c.train.seq_len * args.n_activated_experts);
  // the hook moves each bias by γ·sign(mean − load) of the summed load
  std::vector<float> before = model.layers[1]->moe->gate.bias.to_f32_vector();
  stage.update_biases();
  std::vector<float> after = model.layers[1]->moe->gate.bias.to_f32_vector();
  double mean_load = (double)total / (double)want[0].size();
  for (size_t e = 0; e < after.size(); e++) {
    double sign = mean_load > want[0][e] ? 1 : mean_load < want[0][e] ? -1 : 0;
    CHECK(after[e] == doctest::Approx(before[e] + 0.5 * sign));
  }
  // a new step starts from zero
  stage.make_batch(1);
  CHECK(stage.step_loads().empty());
}
