// tests/train/test_trace.cpp — the gradient's path through a real model (autograd/trace_path.h on a tiny
// Transformer, random init) and `seekgrad trace`'s driver (train/trace.h) on the PRETRAIN stage of a micro config:
//   * loss → layers.0.attn.wkv_a.weight ends in layer 0's MLA (every node after the first layers.0.attn one is
//     inside it, the last is the wkv_a projection), every node's gradient is finite and has the node's shape,
//     the numbers are tape_to_text's, and the parameter's gradient equals a plain backward's, element for element;
//   * the embedding and the output head are consumed twice (main model and MTP module);
//   * run_trace prints the stage, the loss terms and the path, and writes the DOT; unknown parameters and stages
//     are errors naming the closest names / the known stages (the unknown stage before any data is prepared);
//   * --checkpoint: the checkpoint's parameters, step and data position.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "autograd/trace_path.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "train/checkpoint.h"
#include "train/pretrain.h"
#include "train/trace.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  return lines;
}

// 2 layers (1 dense + 1 MoE, sigmoid gate with bias, q-LoRA), 1 MTP module: as tests/models/test_transformer.cpp.
ModelArgs tiny_args() {
  ModelArgs a;
  a.vocab_size = 48;
  a.dim = 16;
  a.inter_dim = 32;
  a.moe_inter_dim = 8;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.n_heads = 2;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.score_func = "sigmoid";
  a.gate_bias = true;
  a.q_lora_rank = 8;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.max_seq_len = 16;
  a.original_seq_len = 16;
  a.n_mtp_modules = 1;
  return a;
}

struct Tiny {
  Rng rng{5};
  Transformer model{tiny_args(), rng};
  Tensor tokens, targets;
  Tiny() {
    Rng data(9);
    tokens = Tensor::randint({2, 8}, data, 0, 48);
    targets = Tensor::randint({2, 8}, data, 0, 48);
  }
  Tensor loss() { return model.loss(tokens, targets, /*mtp_lambda=*/0.3, /*balance_alpha=*/1e-4).loss; }
  Tensor& param(const std::string& name) {
    for (auto& [n, t] : model.named_parameters())
      if (n == name) return *t;
    FAIL("no parameter " << name);
    static Tensor none;
    return none;
  }
  void zero_grad() {
    for (auto& [n, t] : model.named_parameters()) t->zero_grad();
  }
};

// a micro PRETRAIN config (tests/train/test_pretrain.cpp's, fewer stories): vocab 300, dim 32, 2 layers, MTP 1.
std::string micro_yaml(const std::string& out_dir) {
  return "model:\n"
         "  vocab_size: 300\n  dim: 32\n  n_layers: 2\n  n_dense_layers: 1\n  inter_dim: 64\n  n_heads: 2\n"
         "  q_lora_rank: 16\n  kv_lora_rank: 16\n  qk_nope_head_dim: 8\n  qk_rope_head_dim: 8\n  v_head_dim: 8\n"
         "  n_routed_experts: 4\n  n_shared_experts: 1\n  n_activated_experts: 2\n  moe_inter_dim: 32\n"
         "  score_func: sigmoid\n  gate_bias: true\n  n_mtp_modules: 1\n"
         "  max_batch_size: 4\n  max_seq_len: 32\n  original_seq_len: 32\n"
         "train:\n"
         "  seed: 3\n  batch_size: 2\n  seq_len: 16\n  steps: 6\n  warmup_steps: 1\n  threads: 1\n  sample_tokens: 0\n"
         "  out_dir: " + out_dir + "\n"
         "  data: {source: generated, n_stories: 40, vocab_size: 300}\n";
}

}  // namespace

TEST_CASE("gradient_path on a tiny Transformer: loss -> layers.0.attn.wkv_a.weight runs through layer 0's MLA") {
  Tiny t;
  Tensor& wkv_a = t.param("layers.0.attn.wkv_a.weight");
  Tensor loss = t.loss();
  const std::vector<std::string> tape = lines_of(tape_to_text(loss));
  GradientPath p = gradient_path(loss, wkv_a, t.model.named_parameters());
  REQUIRE(p.steps.size() >= 4);
  CHECK(p.tape_nodes == (int64_t)tape.size());
  CHECK(p.param_name == "layers.0.attn.wkv_a.weight");
  CHECK(p.steps.front().number == p.tape_nodes - 1);  // the loss's node is the last in topological order
  CHECK(p.steps.back().scope == "layers.0.attn.wkv_a");
  CHECK(p.steps.back().inputs[p.steps.back().via_input] == "layers.0.attn.wkv_a.weight " + shape_str(wkv_a.shape()));
  CHECK(p.consumers == std::vector<int64_t>{p.steps.back().number});

  size_t first_attn = p.steps.size();
  for (size_t i = 0; i < p.steps.size(); i++)
    if (starts_with(p.steps[i].scope, "layers.0.attn")) {
      first_attn = i;
      break;
    }
  REQUIRE(first_attn + 2 < p.steps.size());  // at least three nodes inside the MLA
  for (size_t i = first_attn; i < p.steps.size(); i++) {
    INFO("step ", i, " ", p.steps[i].label());
    CHECK(starts_with(p.steps[i].scope, "layers.0.attn"));
  }
  for (size_t i = 0; i < p.steps.size(); i++) {
    const GradPathStep& s = p.steps[i];
    INFO("step ", i, " %", s.number, " ", s.label());
    CHECK(s.grad_reached);
    CHECK(std::isfinite(s.grad_norm));
    CHECK(s.grad_norm > 0);
    // one numbering: line %N of the tape is this node, and its output shape is the gradient's
    REQUIRE(s.number < (int64_t)tape.size());
    const std::string& line = tape[s.number];
    CHECK(starts_with(line, "%" + std::to_string(s.number) + " = " + s.label() + "("));
    CHECK(contains(line, ") -> " + shape_str(s.grad_shape) + " f32"));
    if (i + 1 < p.steps.size()) CHECK(s.inputs[s.via_input] == "%" + std::to_string(p.steps[i + 1].number));
  }
  CHECK(p.steps.front().grad_norm == 1.0);  // d loss / d loss

  // The parameter's gradient is the plain backward's, element for element.
  Tensor from_path = p.param_grad;
  t.zero_grad();
  t.loss().backward();
  REQUIRE(wkv_a.grad().defined());
  std::vector<double> a = from_path.to_f64_vector(), b = wkv_a.grad().to_f64_vector();
  REQUIRE(a.size() == b.size());
  double sq = 0;
  for (size_t i = 0; i < a.size(); i++) {
    CHECK(a[i] == b[i]);
    sq += b[i] * b[i];
  }
  CHECK(p.param_grad_norm == doctest::Approx(std::sqrt(sq)).epsilon(1e-12));
  CHECK(p.param_grad_norm > 0);
  CHECK(p.edge_grad_norm == doctest::Approx(p.param_grad_norm).epsilon(1e-12));  // its only consumer
}

TEST_CASE("gradient_path on a tiny Transformer: embedding and head are consumed by the main model and by MTP") {
  Tiny t;
  for (const std::string name : {"embed.weight", "head.weight"}) {
    INFO(name);
    t.zero_grad();
    Tensor& w = t.param(name);
    GradientPath p = gradient_path(t.loss(), w, t.model.named_parameters());
    CHECK(p.consumers.size() == 2);
    CHECK(contains(format_gradient_path(p), "consumed directly by 2 nodes"));
    CHECK(p.param_grad_norm == doctest::Approx(std::sqrt([&] {
            double sq = 0;
            for (double v : w.grad().to_f64_vector()) sq += v * v;
            return sq;
          }())).epsilon(1e-12));
    CHECK(p.edge_grad_norm < p.param_grad_norm * (1 + 1e-12));  // one route's part of the total
  }
}

TEST_CASE("run_trace on the PRETRAIN stage of a micro config: the stage, the loss terms, the path, the DOT") {
  TempDir dir("trace");
  const std::string cfg = dir.file("micro.yaml");
  spit(cfg, micro_yaml(dir.file("run")));
  std::ostringstream log;
  TraceRun run = prepare_trace(cfg, "pretrain", log);
  CHECK(contains(log.str(), "data: preparing " + dir.file("run/data")));
  CHECK(run.step == 0);
  REQUIRE(run.stage);
  CHECK(run.stage->name() == "pretrain");

  std::ostringstream out;
  const std::string dot = dir.file("tape.dot");
  CHECK(run_trace(*run.model, *run.stage, "layers.0.attn.wkv_a.weight", out, dot) == 0);
  const std::string text = out.str();
  CHECK(contains(text, "trace: stage pretrain, step 0, one micro-batch of 32 tokens"));
  CHECK(contains(text, "(main "));
  CHECK(contains(text, ", mtp "));
  CHECK(contains(text, ", balance "));
  CHECK(contains(text, "-> layers.0.attn.wkv_a.weight (24, 32)"));  // [kv_lora_rank + qk_rope_head_dim, dim]
  CHECK(contains(text, "layers.0.attn.wkv_a/"));
  CHECK(contains(text, "layers.0.attn.wkv_a.weight (24, 32)*"));
  CHECK(contains(text, "parameter layers.0.attn.wkv_a.weight: grad (24, 32), norm "));
  CHECK(contains(slurp(dot), "[color=red"));
  // run_trace leaves the gradients of the one sweep: the traced parameter's .grad is set
  Tensor* w = nullptr;
  for (auto& [n, t] : run.model->named_parameters())
    if (n == "layers.0.attn.wkv_a.weight") w = t;
  REQUIRE(w);
  CHECK(w->grad().defined());

  // A second trace reuses the prepared data (as training would) and names the closest parameters of a typo.
  std::ostringstream log2;
  TraceRun again = prepare_trace(cfg, "pretrain", log2);
  CHECK(contains(log2.str(), "data: reusing"));
  std::ostringstream ignored;
  std::string msg;
  try {
    run_trace(*again.model, *again.stage, "layers.0.attn.wkv_a.weigth", ignored);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  CHECK(starts_with(msg, "[trace] the model has no parameter 'layers.0.attn.wkv_a.weigth'"));
  CHECK(contains(msg, "closest names: layers.0.attn.wkv_a.weight, layers.0.attn.wkv_b.weight"));
}

TEST_CASE("prepare_trace: an unknown stage is an error listing the known ones, before any data is prepared") {
  TempDir dir("trace_stage");
  const std::string cfg = dir.file("micro.yaml");
  spit(cfg, micro_yaml(dir.file("run")));
  std::ostringstream log;
  CHECK_THROWS_WITH_AS(prepare_trace(cfg, "dpo", log), "[trace] unknown stage 'dpo' (known: pretrain, sft, grpo)",
                       std::runtime_error);
  CHECK_FALSE(std::filesystem::exists(dir.file("run/data")));
  CHECK(trace_stage_names() == std::vector<std::string>{"pretrain", "sft", "grpo"});
}

// --checkpoint: the parameters and the data position of out_dir/checkpoint, so the traced step is the run's next.
// The checkpoint is written by hand (save_checkpoint, no training): step 1, the loader just past batch 0, and
// one parameter changed, which must come back.
TEST_CASE("prepare_trace from a checkpoint: its parameters, its step and its data position") {
  TempDir dir("trace_ckpt");
  const std::string cfg = dir.file("micro.yaml");
  spit(cfg, micro_yaml(dir.file("run")));
  std::ostringstream log;
  std::string msg;
  try {
    prepare_trace(cfg, "pretrain", log, /*from_checkpoint=*/true);
  } catch (const std::exception& e) {
    msg = e.what();
  }
  CHECK(msg == "[trace] --checkpoint: " + dir.file("run/checkpoint") + " does not exist (train first)");

  TraceRun first = prepare_trace(cfg, "pretrain", log);
  auto& stage = dynamic_cast<PretrainStage&>(*first.stage);
  stage.make_batch(0);
  TrainerState state;
  state.step = 1;
  stage.save_state(state);
  stage.make_batch(1);
  const std::vector<int64_t> batch1 = stage.tokens().to_i64_vector();
  Tensor* w = nullptr;
  for (auto& [n, t] : first.model->named_parameters())
    if (n == "layers.0.attn.wkv_a.weight") w = t;
  REQUIRE(w);
  w->set_at({0, 0}, 0.25);
  save_checkpoint(dir.file("run/checkpoint"), *first.model, nullptr, state);

  TraceRun resumed = prepare_trace(cfg, "pretrain", log, true);
  CHECK(resumed.step == 1);
  CHECK(contains(log.str(), "checkpoint: " + dir.file("run/checkpoint") + " at step 1"));
  for (auto& [n, t] : resumed.model->named_parameters())
    if (n == "layers.0.attn.wkv_a.weight") CHECK(t->at({0, 0}) == 0.25);
  auto& resumed_stage = dynamic_cast<PretrainStage&>(*resumed.stage);
  resumed_stage.make_batch(resumed.step);
  CHECK(resumed_stage.tokens().to_i64_vector() == batch1);
  std::ostringstream out;
  CHECK(run_trace(*resumed.model, *resumed.stage, "layers.0.attn.wkv_a.weight", out, "", resumed.step) == 0);
  CHECK(contains(out.str(), "trace: stage pretrain, step 1,"));
}
