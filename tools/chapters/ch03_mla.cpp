// tools/chapters/ch03_mla.cpp — Chapter 3: Multi-head Latent Attention (models/mla.h, models/README.md §4).
// Prints, with measured numbers: the KV-cache size per token of MHA / GQA / MQA / MLA for the tiny and
// the 671B configs, max |naive − absorbed| (and, when the fixture is there, both paths against the
// official DeepSeek code), decode speed of the two paths as the context grows, and why RoPE is
// decoupled. Read ch03_mla.md beside this file. Writes no files. Checks the numbers ch03_mla.md promises
// (tools/chapters/chapter_check.h) and exits 1 if one fails; the timings are printed, never checked.
//
//   build/bin/ch03_mla [--max-context 2048] [--steps 16] [--dim 2048] [--batch 1] [--threads 0]
//                      [--fixture tests/fixtures/tiny_v2lite]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/runtime.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/mla.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "ops/ops.h"
#include "tools/chapters/chapter_check.h"

namespace {

using namespace sg;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_f32_vector(), y = b.to_f32_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, (double)std::abs(x[i] - y[i]));
  return m;
}

std::string human_bytes(double b) {
  char buf[64];
  if (b >= 1024.0 * 1024.0) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024.0));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

// models/README.md §1: the 671B (V3/R1) attention.
ModelArgs v3_671b() {
  ModelArgs a;
  a.dim = 7168;
  a.n_layers = 61;
  a.n_heads = 128;
  a.q_lora_rank = 1536;
  a.kv_lora_rank = 512;
  a.qk_nope_head_dim = 128;
  a.qk_rope_head_dim = 64;
  a.v_head_dim = 128;
  return a;
}

// models/README.md §1 "tiny_v3".
ModelArgs tiny_v3() {
  ModelArgs a;
  a.vocab_size = 512;
  a.dim = 128;
  a.n_layers = 3;
  a.n_heads = 4;
  a.q_lora_rank = 64;
  a.kv_lora_rank = 32;
  a.qk_nope_head_dim = 32;
  a.qk_rope_head_dim = 16;
  a.v_head_dim = 32;
  a.max_seq_len = 128;
  a.original_seq_len = 32;
  a.rope_factor = 4;
  a.mscale = 0.707;
  return a;
}

// 1. What one token costs in the KV cache, for attention variants of the same width: every variant
//    keeps the MLA head dims (q·k over dn+dr = 192, values dv = 128), only the number of cached heads
//    differs. MLA caches one latent c (r_kv) plus one rope key (dr), whatever the head count.
void print_cache_table(const std::string& title, const ModelArgs& a, int64_t gqa_groups) {
  const int64_t dk = a.qk_head_dim(), dv = a.v_head_dim, L = a.n_layers;
  struct Row {
    std::string name, formula;
    int64_t values;
  };
  std::vector<Row> rows = {
      {"MHA", std::to_string(a.n_heads) + " heads x (" + std::to_string(dk) + " k + " + std::to_string(dv) + " v)",
       a.n_heads * (dk + dv)},
      {"GQA", std::to_string(gqa_groups) + " kv groups x (" + std::to_string(dk) + " + " + std::to_string(dv) + ")",
       gqa_groups * (dk + dv)},
      {"MQA", "1 kv head x (" + std::to_string(dk) + " + " + std::to_string(dv) + ")", dk + dv},
      {"MLA", std::to_string(a.kv_lora_rank) + " latent c + " + std::to_string(a.qk_rope_head_dim) + " rope key",
       mla_cache_values_per_token(a, MLAMode::absorbed)},
  };
  std::printf("\n%s: %lld layers, %lld heads, dn %lld, dr %lld, dv %lld, kv_lora_rank %lld\n", title.c_str(),
              (long long)L, (long long)a.n_heads, (long long)a.qk_nope_head_dim, (long long)a.qk_rope_head_dim,
              (long long)dv, (long long)a.kv_lora_rank);
  std::printf("  %-4s %-34s %12s %22s %10s\n", "", "cached per token per layer", "values", "bytes/token (bf16)",
              "vs MHA");
  for (const Row& r : rows) {
    double bytes = (double)r.values * L * 2;
    std::printf("  %-4s %-34s %12lld %22s %9.1fx\n", r.name.c_str(), r.formula.c_str(), (long long)r.values,
                (std::to_string((long long)bytes) + " = " + human_bytes(bytes)).c_str(),
                (double)rows[0].values / (double)r.values);
  }
}

void section_cache_sizes(sg::chapter::Checks& checks) {
  std::printf("== 1. KV cache per token ==\n");
  std::printf("MLA's naive path caches k = [k_nope ; k_pe] and v per head, exactly the MHA row; its absorbed\n"
              "path caches the MLA row. Totals = values x layers x 2 bytes (bf16).\n");
  print_cache_table("671B (DeepSeek-V3/R1)", v3_671b(), 8);
  print_cache_table("tiny_v3", tiny_v3(), 2);
  // The same numbers measured on allocated caches (f32, one layer of tiny_v3).
  ModelArgs t = tiny_v3();
  MLACache naive(t, MLAMode::naive, 1, 128), latent(t, MLAMode::absorbed, 1, 128);
  std::printf("\nMeasured on allocated tiny_v3 caches (f32, 1 layer): naive %lld B/token (k %s + v %s), "
              "absorbed %lld B/token (kv %s, rows [c | k_pe])\n",
              (long long)naive.bytes_per_token(), shape_str(naive.k_cache.shape()).c_str(),
              shape_str(naive.v_cache.shape()).c_str(), (long long)latent.bytes_per_token(),
              shape_str(latent.kv.shape()).c_str());
  checks.near("671B MLA values per token per layer", (double)mla_cache_values_per_token(v3_671b(), MLAMode::absorbed),
              576, 0);
  checks.near("671B naive (MHA) values per token per layer",
              (double)mla_cache_values_per_token(v3_671b(), MLAMode::naive), 40960, 0);
  checks.near("tiny_v3 naive cache, f32 B/token", (double)naive.bytes_per_token(), 1280, 0);
  checks.near("tiny_v3 absorbed cache, f32 B/token", (double)latent.bytes_per_token(), 192, 0);
}

// 2. The two paths compute the same function.
void section_equality(const std::string& fixture, sg::chapter::Checks& checks) {
  std::printf("\n== 2. naive == absorbed ==\n");
  NoGradGuard no_grad;
  ModelArgs a = tiny_v3();
  Rng rng(3);
  MLA attn(a, rng);
  RopeTable rope(a);
  Tensor x = Tensor::randn({2, 24, a.dim}, rng);
  double d = max_abs_diff(attn.forward(x, 0, rope, nullptr, MLAMode::naive),
                          attn.forward(x, 0, rope, nullptr, MLAMode::absorbed));
  std::printf("tiny_v3 MLA (q-LoRA %lld), random weights, x [2,24,128]: max |naive - absorbed| = %.3g\n",
              (long long)a.q_lora_rank, d);
  checks.at_most("tiny_v3 max |naive - absorbed|", d, 1e-5);

  std::string dir = fixture + "/";
  if (!std::filesystem::exists(dir + "reference.safetensors")) {
    std::printf("official reference: SKIPPED (no fixture at %s; run from the repository root or pass --fixture)\n",
                fixture.c_str());
    return;
  }
  // Layer 0 of the official code's tiny model: h1 = h0 + MLA(attn_norm(h0)); h1 += MLP(ffn_norm(h1)).
  ModelArgs f = load_model_args_json(dir + "config.json");
  SafeTensorsFile model = read_safetensors(dir + "model.safetensors");
  SafeTensorsFile ref = read_safetensors(dir + "reference.safetensors");
  Rng r2(0);
  RMSNorm attn_norm(f.dim, f.rms_norm_eps), ffn_norm(f.dim, f.rms_norm_eps);
  MLA mla(f, r2);
  MLP ffn(f.dim, f.inter_dim, r2);
  NamedParameters params;
  attn_norm.parameters("layers.0.attn_norm", params);
  mla.parameters("layers.0.attn", params);
  ffn_norm.parameters("layers.0.ffn_norm", params);
  ffn.parameters("layers.0.ffn", params);
  load_parameters(params, model, dir + "model.safetensors", false);
  RopeTable frope(f);
  Tensor h0 = tensor_from_st(ref.get("hidden.0")), h1_ref = tensor_from_st(ref.get("hidden.1"));
  Tensor outs[2];
  for (int m = 0; m < 2; m++) {
    MLAMode mode = m == 0 ? MLAMode::naive : MLAMode::absorbed;
    Tensor h1 = add(h0, mla.forward(attn_norm.forward(h0), 0, frope, nullptr, mode));
    outs[m] = add(h1, ffn.forward(ffn_norm.forward(h1)));
    double e = max_abs_diff(outs[m], h1_ref);
    std::printf("official tiny_v2lite layer 0 (%s): max |ours - official hidden.1| = %.3g\n", mla_mode_name(mode), e);
    checks.at_most(std::string("official layer 0, ") + mla_mode_name(mode) + ": max |ours - hidden.1|", e, 1e-5);
  }
  std::printf("official tiny_v2lite layer 0: max |naive - absorbed| = %.3g (the official code's own: 2.6e-6 on logits)\n",
              max_abs_diff(outs[0], outs[1]));
}

// 3. Decode speed. One MLA layer with DeepSeek-V2-Lite's attention shapes (dim 2048, 16 heads, no q-LoRA,
//    r_kv 512, dn 128, dr 64, dv 128): prefill to a context, then time `steps` one-token decode steps in
//    each mode (taking turns), each with its own cache; report the median step. A chunked prefill
//    (start_pos > 0, S > 1) carries the context from one row to the next.
void section_speed(int64_t max_context, int64_t steps, int64_t dim, int64_t batch, sg::chapter::Checks& checks) {
  std::printf("\n== 3. decode speed: one MLA layer (V2-Lite attention: 16 heads, r_kv 512, dn 128, dr 64, dv 128), "
              "dim %lld, batch %lld ==\n", (long long)dim, (long long)batch);
  ModelArgs a;
  a.dim = dim;
  a.n_heads = 16;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 512;
  a.qk_nope_head_dim = 128;
  a.qk_rope_head_dim = 64;
  a.v_head_dim = 128;
  a.max_seq_len = max_context + steps;
  a.original_seq_len = a.max_seq_len;  // no YaRN: irrelevant to speed
  NoGradGuard no_grad;
  Rng rng(5);
  MLA attn(a, rng);
  RopeTable rope(a);
  const int64_t smax = max_context + steps;
  Tensor xs = Tensor::randn({batch, smax, a.dim}, rng);
  MLACache caches[2] = {MLACache(a, MLAMode::naive, batch, smax), MLACache(a, MLAMode::absorbed, batch, smax)};
  std::printf("weights %s (f32); cache per token: naive %s, absorbed %s; ms = median decode step, "
              "speedup = naive ms / absorbed ms, cache = after the row\n",
              human_bytes((double)attn.num_parameters() * 4).c_str(), human_bytes(caches[0].bytes_per_token()).c_str(),
              human_bytes(caches[1].bytes_per_token()).c_str());
  std::printf("  %8s %10s %12s %10s %12s %10s %12s %14s %11s\n", "context", "naive ms", "absorbed ms", "naive tok/s",
              "absorbed tok/s", "speedup", "naive cache", "absorbed cache", "max |diff|");
  const MLAMode modes[2] = {MLAMode::naive, MLAMode::absorbed};
  int64_t pos = 0;
  double worst_diff = 0;
  std::vector<int64_t> contexts;
  for (int64_t ctx = 64; ctx < max_context; ctx *= 2) contexts.push_back(ctx);
  contexts.push_back(max_context);
  for (int64_t ctx : contexts) {
    // Chunked prefill up to `ctx` (the previous row's decode steps are part of the context).
    if (pos < ctx)
      for (int m = 0; m < 2; m++) attn.forward(narrow(xs, 1, pos, ctx - pos), pos, rope, &caches[m], modes[m]);
    pos = ctx;
    // The two modes take turns step by step, so both see the same load from other processes;
    // the median step is what is reported.
    std::vector<double> step_seconds[2];
    Tensor last[2];
    for (int64_t s = 0; s < steps; s++, pos++)
      for (int m = 0; m < 2; m++) {
        auto t0 = std::chrono::steady_clock::now();
        last[m] = attn.forward(narrow(xs, 1, pos, 1), pos, rope, &caches[m], modes[m]);
        step_seconds[m].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    double seconds[2];
    for (int m = 0; m < 2; m++) {
      std::sort(step_seconds[m].begin(), step_seconds[m].end());
      seconds[m] = step_seconds[m][step_seconds[m].size() / 2];
    }
    double diff = max_abs_diff(last[0], last[1]);
    worst_diff = std::max(worst_diff, diff);
    std::printf("  %8lld %10.2f %12.2f %10.1f %12.1f %9.2fx %12s %14s %11.2g\n", (long long)ctx, seconds[0] * 1e3,
                seconds[1] * 1e3, batch / seconds[0], batch / seconds[1], seconds[0] / seconds[1],
                human_bytes((double)caches[0].bytes_per_token() * pos * batch).c_str(),
                human_bytes((double)caches[1].bytes_per_token() * pos * batch).c_str(), diff);
  }
  std::printf("Per decoded token the naive path reads H(dn+dr+dv) = %lld cached values per position, the absorbed\n"
              "path r_kv + dr = %lld, but does ~%.1fx the multiply-adds per position (q~ . c over r_kv = %lld per head\n"
              "instead of q . k over dn+dr = %lld); it pays off once the cache, not the weights, dominates the traffic.\n",
              (long long)mla_cache_values_per_token(a, MLAMode::naive),
              (long long)mla_cache_values_per_token(a, MLAMode::absorbed),
              (double)(a.kv_lora_rank + a.qk_rope_head_dim + a.kv_lora_rank) / (a.qk_head_dim() + a.v_head_dim),
              (long long)a.kv_lora_rank, (long long)a.qk_head_dim());
  checks.at_most("decode: max |naive - absorbed| over the contexts", worst_diff, 1e-4);
  checks.near("V2-Lite naive cache, f32 B/token", (double)caches[0].bytes_per_token(), 20480, 0);
  checks.near("V2-Lite absorbed cache, f32 B/token", (double)caches[1].bytes_per_token(), 2304, 0);
}

void section_decoupled_rope() {
  std::printf(
      "\n== 4. why RoPE is decoupled ==\n"
      "Absorption rests on q_nope . (W_UK c_t) = (W_UK^T q_nope) . c_t: W_UK can move to the query side because\n"
      "nothing sits between it and the dot product. RoPE would: a rotated key R(t) W_UK c_t gives\n"
      "q^T R(s)^T R(t) W_UK c_t = q^T R(t-s) W_UK c_t, and R(t-s) depends on the key's position, so no single\n"
      "matrix can be folded into the query for all t; every head's key would have to be rebuilt for every\n"
      "cached token at every step, which is the naive path. DeepSeek therefore splits each head's q.k into\n"
      "  * dn = 128 position-free dims, computed from the latent c (absorbable, cached as c: 512 values), and\n"
      "  * dr = 64 rotary dims, whose key k_pe = RoPE(rows r_kv.. of wkv_a x) is ONE key shared by all heads\n"
      "    (MQA-style), cached already rotated (64 values).\n"
      "So the cache is 512 + 64 = 576 values per token per layer, and scores = q~ . c_t + q_pe . k_pe_t.\n");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 3: Multi-head Latent Attention (naive vs absorbed, KV-cache sizes, decoupled RoPE)"};
  int64_t max_context = 2048, steps = 16, dim = 2048, batch = 1;
  int threads = 0;
  std::string fixture = "tests/fixtures/tiny_v2lite";
  app.add_option("--max-context", max_context, "largest context for the decode-speed table (64, 128, ... up to it)")
      ->check(CLI::Range(64, 16384));
  app.add_option("--steps", steps, "decode steps timed per context")->check(CLI::Range(1, 1024));
  app.add_option("--fixture", fixture, "the official tiny model (tests/fixtures/tiny_v2lite) for the reference check");
  app.add_option("--dim", dim, "model width of the decode-speed layer (its attention keeps V2-Lite's heads)")
      ->check(CLI::Range(16, 8192));
  app.add_option("--batch", batch, "sequences decoded together in the speed table")->check(CLI::Range(1, 64));
  app.add_option("--threads", threads, "CPU threads (0 = the runtime's default: SEEKGRAD_THREADS or all cores)")
      ->check(CLI::Range(0, 1024));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) sg::set_num_threads(threads);
  try {
    std::printf("Chapter 3 - Multi-head Latent Attention (models/README.md section 4), %d CPU thread(s)\n\n",
                sg::num_threads());
    sg::chapter::Checks checks;
    section_cache_sizes(checks);
    section_equality(fixture, checks);
    section_speed(max_context, steps, dim, batch, checks);
    section_decoupled_rope();
    return checks.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "ch03_mla: error: " << e.what() << "\n";
    return 1;
  }
}
