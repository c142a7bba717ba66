// tools/seekgrad.cpp — the `seekgrad` command-line tool (CLI11). Each subcommand is a thin
// wrapper over a library function, so everything it does can also be stepped through in a test.
//
//   seekgrad pipeline            the main job (README): chapter 1 + a training demo, for now
//   seekgrad bench gemm|ops|moe|attention|train|rollout
//                                benchmarks: tables, or one JSON object per result with --json
//   seekgrad trace --config F --stage pretrain --to PARAM
//                                one training step: the gradient's path from the loss to PARAM, node by node
//   seekgrad trace [ch01]        the backward sweep of chapter 1, node by node (--dot FILE: the tape)
//   seekgrad prepare|generate|eval|import|export
//                                data -> shards, text from a model, perplexity, HF model dirs in and out
//                                (tools/cli/commands.h)
#include <CLI/CLI.hpp>

#include <fstream>
#include <sstream>
#include <iostream>

#include "autograd/allocator.h"
#include "autograd/runtime.h"
#include "models/output_paths.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_attention.h"
#include "tools/bench/bench_moe.h"
#include "tools/bench/bench_ops.h"
#include "tools/bench/bench_rollout.h"
#include "tools/bench/bench_train.h"
#include "tools/cli/commands.h"
#include "tools/cli/logits.h"
#include "tools/cli/mlp_demo.h"
#include "tools/cli/trace_cli.h"
#include "tools/cli/train_cli.h"

int main(int argc, char** argv) {
  CLI::App app{"seekgrad — DeepSeek from scratch in C++ (autograd, kernels, models, training)"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads,
                 "CPU threads; wins over SEEKGRAD_THREADS, which wins over a config's train.threads (default: all cores)")
      ->check(CLI::Range(1, 4096));

  // ---- pipeline ----
  auto* pipeline = app.add_subcommand("pipeline",
      "Run the main job: chapter 1's autograd check, then DATA_PREP -> PRETRAIN (stories + arithmetic) -> SFT -> "
      "GRPO -> EXPORT of the tiny DeepSeek config, ending with the held-out accuracy of each stage");
  std::string pipeline_config = "configs/tiny.yaml";
  pipeline->add_option("--config", pipeline_config, "pipeline config (YAML)");
  std::string pipeline_device;
  pipeline->add_option("--device", pipeline_device,
                       "override train.device: cpu, or cuda (a GPU; SEEKGRAD_CUDA_EMU=1 runs the CUDA kernels in the CPU emulator)")
      ->check(CLI::IsMember({"cpu", "cuda"}));

  // ---- train ----
  auto* train = app.add_subcommand("train", "Pretrain a model from a YAML config (resumes from <out_dir>/checkpoint)");
  std::string train_config;
  int train_steps = 0;
  train->add_option("--config", train_config, "YAML config (model: + train: sections)")->required();
  train->add_option("--steps", train_steps, "override train.steps")->check(CLI::Range(1, 1000000000));
  std::string train_device;
  train->add_option("--device", train_device,
                    "override train.device: cpu, or cuda (a GPU; SEEKGRAD_CUDA_EMU=1 runs the CUDA kernels in the CPU emulator)")
      ->check(CLI::IsMember({"cpu", "cuda"}));

  // ---- bench ----
  auto* bench = app.add_subcommand("bench", "Benchmarks (GFLOP/s, GB/s vs this machine's measured ceilings)");
  bench->require_subcommand(1);
  auto* bench_gemm = bench->add_subcommand("gemm", "GEMM GFLOP/s vs the FMA peak measured in the same run");
  sg::bench::GemmBenchOptions gemm_opt;
  bench_gemm->add_flag("--json", gemm_opt.json, "one JSON object per result");
  bench_gemm->add_flag("--quick", gemm_opt.quick, "shorter timings, squares up to 1024");
  bench_gemm->add_option("--thread-counts", gemm_opt.threads, "thread counts to run (default 1 2)");
  bench_gemm->add_flag("--fp8", gemm_opt.fp8,
                       "also the blockwise FP8 GEMM (fp8_gemm, fp32_promoted) on the square and forward shapes, "
                       "the activation quantization time, and fp8_gemm_naive at 256^3");
  auto* bench_ops = bench->add_subcommand("ops", "softmax / rms_norm / elementwise GB/s vs memcpy of the same bytes");
  sg::bench::OpsBenchOptions ops_opt;
  bench_ops->add_flag("--json", ops_opt.json, "one JSON object per result");
  bench_ops->add_flag("--quick", ops_opt.quick, "fewer sizes and repetitions");

  auto* bench_moe = bench->add_subcommand("moe", "MoE layer vs a dense FFN of equal active parameters, 8 -> 256 experts");
  bool moe_json = false;
  bench_moe->add_flag("--json", moe_json, "one JSON object per result");

  auto* bench_attn = bench->add_subcommand("attention", "Prefill and decode tokens/s of MHA / MQA / GQA / MLA, T = 256 ... 4096");
  bool attn_json = false, attn_quick = false;
  bench_attn->add_flag("--json", attn_json, "one JSON object per result");
  bench_attn->add_flag("--quick", attn_quick, "T up to 1024");

  auto* bench_roll = bench->add_subcommand("rollout",
      "RL rollout sampling: batched KV-cache decoding (generate_batch) vs generate() row by row, G = 8 x 64 tokens");
  std::string rollout_config = "configs/tiny.yaml";
  bool rollout_json = false;
  bench_roll->add_option("--config", rollout_config, "model shape (YAML model: section; random init)")->capture_default_str();
  bench_roll->add_flag("--json", rollout_json, "one JSON object per result");

  // ---- logits ----
  auto* logits = app.add_subcommand("logits", "Run a model directory (config.json + model.safetensors) on token ids; write every position's logits");
  std::string model_dir, tokens_path, out_path;
  bool decode = false;
  logits->add_option("--model", model_dir, "model directory (HF config.json + model.safetensors)")->required();
  logits->add_option("--tokens", tokens_path, "JSON file: a list of token-id sequences")->required();
  logits->add_option("--out", out_path, "output safetensors file (float32 `logits` [B, T, V])")->required();
  logits->add_flag("--decode", decode, "produce the logits by incremental decoding through the KV cache");
  std::string logits_fp8;
  logits->add_option("--fp8", logits_fp8, "FP8 checkpoint weights: native (official FP8 GEMMs, the default) or dequant (to f32)")
      ->check(CLI::IsMember({"native", "dequant"}));

  auto* bench_tr = bench->add_subcommand("train", "Training-step tokens/s (forward + backward + AdamW), peak memory, per-component times");
  std::string bench_config = "configs/bench-small.yaml";
  bool bench_train_json = false;
  int bench_steps = 5;
  bench_tr->add_option("--config", bench_config, "model + batch config (YAML)");
  bench_tr->add_flag("--json", bench_train_json, "one JSON object per result");
  bench_tr->add_option("--steps", bench_steps, "timed steps (after 2 warm-up steps)")->check(CLI::Range(1, 1000000));
  std::string bench_device;
  bench_tr->add_option("--device", bench_device, "override train.device: cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));

  // ---- trace ----
  auto* trace = app.add_subcommand("trace",
      "One training step's gradient path from the loss to a parameter (--config, --to), or chapter 1's backward "
      "sweep node by node (no --config)");
  sg::TraceCommand trace_cmd;
  trace->add_option("chapter", trace_cmd.chapter, "without --config: which chapter's model (ch01, the default)")
      ->check(CLI::IsMember({"ch01"}));
  trace->add_option("--config", trace_cmd.config, "YAML config of the run (model: + train:), as for `seekgrad train`");
  trace->add_option("--stage", trace_cmd.stage, "the training stage whose loss is traced (pretrain, sft, grpo: sft and grpo start from the pipeline's previous stage when it exists)");
  trace->add_option("--to", trace_cmd.to, "the parameter, e.g. layers.0.attn.wkv_a.weight");
  trace->add_flag("--checkpoint", trace_cmd.from_checkpoint,
                  "trace the model and data position of <out_dir>/checkpoint (the run's next step) instead of step 0");
  trace->add_option("--dot", trace_cmd.dot, "also write the tape as Graphviz DOT to this file (the path in red)");

  // ---- prepare / generate / eval / import / export ----
  sg::cli::DataModelCommands data_model_commands(app);

  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) sg::set_num_threads(threads, sg::ThreadsFrom::command_line);
    if (pipeline->parsed()) {
      std::cout << "seekgrad pipeline (" << sg::num_threads() << " threads)\n\n== stage 0: autograd self-check (chapter 1) ==\n";
      std::ostringstream ch1;
      int rc = sg::demo::run_chapter1(300, "", ch1);
      std::string text = ch1.str();
      std::cout << text.substr(text.rfind("   loss ")) << "\n";
      if (rc != 0) return rc;
      return sg::run_pipeline(pipeline_config, pipeline_device);
    }
    if (train->parsed()) return sg::run_train(train_config, train_steps, train_device);
    if (bench_tr->parsed()) return sg::bench::bench_train(bench_config, bench_train_json, bench_steps, bench_device);
    if (bench_gemm->parsed()) return sg::bench::bench_gemm(gemm_opt);
    if (bench_ops->parsed()) return sg::bench::bench_ops(ops_opt);
    if (bench_moe->parsed()) return sg::bench::bench_moe(moe_json);
    if (bench_attn->parsed()) return sg::bench::bench_attention(attn_json, attn_quick);
    if (bench_roll->parsed()) return sg::bench::bench_rollout(rollout_config, rollout_json);
    if (logits->parsed()) return sg::run_logits(model_dir, tokens_path, out_path, decode, logits_fp8);
    if (auto rc = data_model_commands.run(std::cout)) return *rc;
    if (trace->parsed()) {
      if (!trace_cmd.dot.empty()) sg::refuse_overwrite("trace", "--dot", trace_cmd.dot, {{trace_cmd.config, "the config file"}});
      return sg::run_trace_command(trace_cmd, std::cout);
    }
  } catch (const std::exception& e) {
    std::cerr << "seekgrad: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
