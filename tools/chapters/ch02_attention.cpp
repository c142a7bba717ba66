// tools/chapters/ch02_attention.cpp — Chapter 2: MHA, MQA and GQA, the KV cache, and the fused (flash)
// attention kernel. Read ch02_attention.md beside this file.
//
//   1. Three attention modules at the same width (default dim 256, 8 query heads of 32), differing only in
//      n_kv_heads (8 = MHA, 2 = GQA, 1 = MQA): parameters and KV-cache bytes per token, read off real
//      models/attention.h objects.
//   2. The cache changes nothing: decoding token by token through the KV cache vs one full forward, and
//      the fused flash kernel vs the composite softmax(QKᵀ·scale + mask)V path — max |Δ|, measured.
//   3. Decode speed as the context grows (64 → --max-context): the median time of one decode step and
//      tokens/s for each variant, and the cache bytes each step reads.
//   4. runs/ch02/attention_heatmap.png: one head's attention probabilities on a 40-token sequence made of a
//      repeated 5-token phrase — with random weights (left) and with a hand-set "find the same token"
//      head (right) — two train/plot heat maps side by side.
//   At the end, the numbers ch02_attention.md promises are checked (sg::chapter::Checks; exit 1 if one
//   fails). Timings are printed, never checked.
//
//   build/bin/ch02_attention [--dim 256] [--heads 8] [--kv-heads 8,2,1] [--max-context 1024] [--steps 32]
//                            [--batch 4] [--out runs/ch02] [--threads N]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/runtime.h"
#include "models/attention.h"
#include "models/layers.h"
#include "ops/ops.h"
#include "tools/chapters/chapter_check.h"
#include "train/plot.h"

using namespace sg;

namespace {

std::string human_bytes(double b) {
  char buf[64];
  if (b >= 1024.0 * 1024.0 * 1024.0) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
  else if (b >= 1024.0 * 1024.0) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024.0));
  else if (b >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

ModelArgs chapter_args(int64_t dim, int64_t heads, int64_t kv_heads, int64_t max_seq_len) {
  ModelArgs a;
  a.dim = dim;
  a.n_heads = heads;
  a.n_kv_heads = kv_heads;
  a.max_seq_len = max_seq_len;
  a.original_seq_len = max_seq_len;  // plain RoPE (YaRN only stretches past original_seq_len)
  return a;
}

// ---- 1. parameters and cache bytes ---------------------------------------------------------------
void print_sizes(std::vector<Attention>& models, int64_t max_context, chapter::Checks& checks) {
  std::printf("1. Same width, different number of key/value heads\n\n");
  std::printf("   %-4s %7s %8s %8s %10s %10s %10s %10s %12s %14s\n", "", "n_heads", "kv_heads", "head_dim", "wq", "wk+wv",
              "wo", "params", "KV B/token", "KV @ context");
  for (Attention& m : models) {
    KVCache cache = m.make_cache(1, max_context);
    std::printf("   %-4s %7lld %8lld %8lld %10lld %10lld %10lld %10lld %12lld %14s\n", m.kind(), (long long)m.n_heads,
                (long long)m.n_kv_heads, (long long)m.head_dim, (long long)m.wq.weight.numel(),
                (long long)(m.wk.weight.numel() + m.wv.weight.numel()), (long long)m.wo.weight.numel(),
                (long long)m.num_parameters(), (long long)cache.bytes_per_token(), human_bytes((double)cache.bytes()).c_str());
  }
  for (Attention& m : models) {  // exact: the table is arithmetic on the shapes
    const std::string k = m.kind();
    checks.near(k + ": KV bytes/token = 2*kv_heads*head_dim*4", (double)m.make_cache(1, 1).bytes_per_token(),
                2.0 * (double)m.n_kv_heads * (double)m.head_dim * 4, 0);
    checks.near(k + ": params = 2*dim*(heads + kv_heads)*head_dim", (double)m.num_parameters(),
                2.0 * (double)m.dim * (double)(m.n_heads + m.n_kv_heads) * (double)m.head_dim, 0);
  }
  std::printf("\n   KV B/token = 2 (k and v) × kv_heads × head_dim × 4 bytes (f32), per layer and sequence, measured on\n"
              "   KVCache objects; \"KV @ context\" = one sequence of %lld tokens, one layer.\n",
              (long long)max_context);
  // The same arithmetic at a production scale (no model built): Llama-2-70B's attention, bf16, 80 layers.
  double per_layer_gqa = 2.0 * 8 * 128 * 2, per_layer_mha = 2.0 * 64 * 128 * 2;
  std::printf("   At scale (arithmetic): 64 query heads of 128, 80 layers, bf16 — MHA %s/token, GQA-8 %s/token,\n"
              "   MQA %s/token; a 32k-token context costs %s (MHA) vs %s (GQA-8) per sequence.\n\n",
              human_bytes(per_layer_mha * 80).c_str(), human_bytes(per_layer_gqa * 80).c_str(),
              human_bytes(2.0 * 1 * 128 * 2 * 80).c_str(), human_bytes(per_layer_mha * 80 * 32768).c_str(),
              human_bytes(per_layer_gqa * 80 * 32768).c_str());
}

// ---- 2. exactness --------------------------------------------------------------------------------
void print_exactness(const std::vector<Attention>& models, const RopeTable& rope, Rng& rng, chapter::Checks& checks) {
  std::printf("2. The cache and the fused kernel change nothing (f32, batch 2, 24 tokens)\n\n");
  std::printf("   %-4s %28s %28s %26s\n", "", "max|cache step-by-step - full|", "max|cache in chunks - full|",
              "max|fused - composite|");
  NoGradGuard no_grad;
  std::vector<std::tuple<std::string, double, double, double>> pending;  // checked under the table
  for (const Attention& m : models) {
    Tensor x = Tensor::randn({2, 24, m.dim}, rng);
    Tensor full = m.forward(x, 0, rope);
    KVCache cache = m.make_cache(2, 24);
    double step = 0;
    for (int64_t s = 0; s < 24; s++)
      step = std::max(step, max_abs_diff(m.forward(narrow(x, 1, s, 1), s, rope, &cache), narrow(full, 1, s, 1)));
    KVCache cache2 = m.make_cache(2, 24);
    double chunks = 0;
    int64_t pos = 0;
    for (int64_t n : {7, 1, 10, 6}) {
      chunks = std::max(chunks, max_abs_diff(m.forward(narrow(x, 1, pos, n), pos, rope, &cache2), narrow(full, 1, pos, n)));
      pos += n;
    }
    Attention composite = m;
    composite.impl = AttentionImpl::composite;
    double twin = max_abs_diff(composite.forward(x, 0, rope), full);
    std::printf("   %-4s %28.2e %28.2e %26.2e\n", m.kind(), step, chunks, twin);
    pending.push_back({m.kind(), step, chunks, twin});
  }
  for (const auto& [kind, step, chunks, twin] : pending) {
    checks.at_most(kind + ": max|cache step-by-step - full|", step, 1e-5);
    checks.at_most(kind + ": max|cache in chunks - full|", chunks, 1e-5);
    checks.at_most(kind + ": max|fused - composite|", twin, 1e-5);
  }
  std::printf("\n   (f32 rounding: the fused kernel sums in a different order and uses its own exp.)\n\n");
}

// ---- 3. decode speed -----------------------------------------------------------------------------
struct DecodeRow {
  double step_ms, tokens_per_s, cache_bytes_read;
};

DecodeRow measure_decode(const Attention& m, const RopeTable& rope, int64_t batch, int64_t context, int64_t steps, Rng& rng) {
  NoGradGuard no_grad;
  KVCache cache = m.make_cache(batch, context + steps);
  Tensor x = Tensor::randn({batch, context + steps, m.dim}, rng);
  m.forward(narrow(x, 1, 0, context), 0, rope, &cache);  // prefill (untimed)
  std::vector<double> t;
  for (int64_t s = 0; s < steps; s++) {
    Tensor xs = contiguous(narrow(x, 1, context + s, 1));
    auto t0 = std::chrono::steady_clock::now();
    m.forward(xs, context + s, rope, &cache);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  double median = t[t.size() / 2];
  return {median * 1e3, (double)batch / median, (double)batch * (double)context * (double)cache.bytes_per_token()};
}

void print_decode(const std::vector<Attention>& models, const RopeTable& rope, int64_t batch, int64_t max_context,
                  int64_t steps, Rng& rng) {
  std::printf("3. Decode speed as the context grows (batch %lld, median of %lld one-token steps, %d threads)\n\n",
              (long long)batch, (long long)steps, num_threads());
  std::printf("   %8s", "context");
  for (const Attention& m : models) std::printf("  %5s ms %6s tok/s %11s", m.kind(), m.kind(), "cache read");
  std::printf("\n");
  for (int64_t context = 64; context <= max_context; context *= 2) {
    std::printf("   %8lld", (long long)context);
    for (const Attention& m : models) {
      DecodeRow r = measure_decode(m, rope, batch, context, steps, rng);
      std::printf("  %8.3f %12.0f %11s", r.step_ms, r.tokens_per_s, human_bytes(r.cache_bytes_read).c_str());
    }
    std::printf("\n");
  }
  std::printf("\n   \"cache read\" = the K and V bytes one step reads: batch × context × KV bytes/token.\n\n");
}

// ---- 4. the heat map -----------------------------------------------------------------------------
// One panel: colour = sqrt(p) (so weak weights stay visible), the masked future (t > s) grey.
Image attention_panel(const std::vector<double>& p, int64_t S, const std::string& title, const std::vector<int64_t>& tokens) {
  std::vector<double> cells(p.size());
  for (int64_t s = 0; s < S; s++)
    for (int64_t t = 0; t < S; t++) cells[s * S + t] = t > s ? NAN : std::sqrt(p[s * S + t]);
  HeatmapOptions opt;
  opt.title = title;
  opt.y_label = "query position";
  opt.x_label = "key position";
  opt.lo = 0.0;
  opt.hi = 1.0;
  opt.cell = 8;
  opt.note = "tokens:";
  for (int64_t i = 0; i < std::min<int64_t>(S, 10); i++) opt.note += " " + std::to_string(tokens[i]);
  opt.note += " ...  colour: sqrt(p)";
  return render_heatmap(cells, (int)S, (int)S, opt);
}

// check_splits: the bounds on the printed mass splits are the default model's (dim 256, 8 heads, GQA-2).
void heatmap(const Attention& base, const RopeTable& rope, const std::string& out_dir, bool check_splits,
             chapter::Checks& checks) {
  std::printf("4. One head's attention, drawn\n\n");
  NoGradGuard no_grad;
  Rng rng(7);  // its own stream: the picture does not depend on the options of sections 1-3
  const int64_t S = 40, vocab = 8, dim = base.dim, hd = base.head_dim;
  // A 5-token phrase repeated: 3 1 4 6 5 3 1 4 6 5 ... (each token recurs every 5 positions)
  const int64_t phrase[5] = {3, 1, 4, 6, 5};
  std::vector<int64_t> tokens(S);
  for (int64_t s = 0; s < S; s++) tokens[s] = phrase[s % 5];
  Tensor embed = Tensor::randn({vocab, dim}, rng);
  Tensor x = unsqueeze(embedding(embed, Tensor::from_vector(tokens, {S})), 0);  // [1, S, dim]

  // Left: the module as initialised (random weights). Right: head 0 hand-set to compare a token with the
  // keys by their first hd input dims: wq rows of head 0 = c·[I_hd 0], wk rows of kv head 0 = [I_hd 0],
  // so score(s, t) = c·scale·RoPE(x_s[:hd]) · RoPE(x_t[:hd]) — large when t holds the same token as s.
  Attention tuned = base;
  tuned.wq.weight = base.wq.weight.clone_data();
  tuned.wk.weight = base.wk.weight.clone_data();
  const double c = 1.0;
  for (int64_t r = 0; r < hd; r++)
    for (int64_t i = 0; i < dim; i++) {
      tuned.wq.weight.set_at({r, i}, r == i ? c : 0.0);
      tuned.wk.weight.set_at({r, i}, r == i ? 1.0 : 0.0);
    }
  std::vector<double> p_random = narrow(narrow(base.probabilities(x, 0, rope), 1, 0, 1), 0, 0, 1).to_f64_vector();
  std::vector<double> p_tuned = narrow(narrow(tuned.probabilities(x, 0, rope), 1, 0, 1), 0, 0, 1).to_f64_vector();

  // How the probability mass of each query row splits, averaged over rows s >= 5 (which have earlier copies).
  auto split = [&](const std::vector<double>& p, double& self, double& copies, double& others) {
    self = copies = others = 0;
    for (int64_t s = 5; s < S; s++)
      for (int64_t t = 0; t <= s; t++) {
        double v = p[s * S + t];
        if (t == s) self += v;
        else if (tokens[t] == tokens[s]) copies += v;
        else others += v;
      }
    self /= (S - 5), copies /= (S - 5), others /= (S - 5);
  };
  double rs, rc, ro, ts, tc, to;
  split(p_random, rs, rc, ro);
  split(p_tuned, ts, tc, to);
  std::printf("   40 tokens, a 5-token phrase repeated; head 0 of the %s model. Mean probability per query row\n"
              "   (rows 5..39) on:              itself   earlier copies of its token   other tokens\n",
              base.kind());
  std::printf("   random weights              %8.3f   %27.3f   %12.3f\n", rs, rc, ro);
  std::printf("   hand-set head (c = %.1f)     %8.3f   %27.3f   %12.3f\n", c, ts, tc, to);
  std::printf("   (uniform causal attention would put 1/(s+1) on each key: about %.3f on itself at s = 20)\n", 1.0 / 21);

  // The story of the two rows above (means over 35 rows of one deterministic head: bounds, not timings).
  if (check_splits) {
    checks.at_most("random weights: mass on itself", rs, 0.15);
    checks.at_least("random weights: mass on other tokens", ro, 0.6);
    checks.at_least("hand-set head: mass on itself", ts, 0.5);
    checks.at_least("hand-set head: mass on itself + earlier copies", ts + tc, 0.9);
  }

  // What the picture shows as grey is really 0, and every row is a distribution.
  double max_future = 0, max_row_err = 0;
  for (const std::vector<double>* p : {&p_random, &p_tuned})
    for (int64_t s = 0; s < S; s++) {
      double sum = 0;
      for (int64_t t = 0; t < S; t++) {
        if (t <= s) sum += (*p)[s * S + t];
        else max_future = std::max(max_future, (*p)[s * S + t]);
      }
      max_row_err = std::max(max_row_err, std::abs(sum - 1));
    }
  checks.near("largest probability on a future key", max_future, 0, 0);
  checks.at_most("max |row sum - 1|", max_row_err, 1e-5);

  Image img = hstack({attention_panel(p_random, S, "random weights (head 0)", tokens),
                      attention_panel(p_tuned, S, "hand-set head 0: same token", tokens)},
                     24);
  const std::string path = out_dir + "/attention_heatmap.png";
  write_png(path, img);
  std::printf("\n   wrote %s (%d x %d): causal softmax(q k^T / sqrt(hd)), colour = sqrt(probability), grey = masked future\n\n",
              path.c_str(), img.width, img.height);
  checks.that("wrote " + path, std::filesystem::file_size(path) > 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 2: MHA, MQA, GQA, the KV cache and the fused attention kernel"};
  int64_t dim = 256, heads = 8, max_context = 1024, steps = 32, batch = 4;
  std::vector<int64_t> kv_heads = {8, 2, 1};
  std::string out = "runs/ch02";
  int threads = 0;
  app.add_option("--dim", dim, "model width")->check(CLI::PositiveNumber);
  app.add_option("--heads", heads, "query heads")->check(CLI::PositiveNumber);
  app.add_option("--kv-heads", kv_heads, "key/value heads of each variant (each must divide --heads)")->delimiter(',');
  app.add_option("--max-context", max_context, "longest context of the decode timing (doubling from 64)")->check(CLI::Range(64, 1 << 16));
  app.add_option("--steps", steps, "decode steps timed per context")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "sequences decoded at once")->check(CLI::PositiveNumber);
  app.add_option("--out", out, "where to write the PNG");
  app.add_option("--threads", threads, "CPU threads (default: all cores, or SEEKGRAD_THREADS)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) set_num_threads(threads);

  chapter::Checks checks;
  try {
    auto t0 = std::chrono::steady_clock::now();
    Rng rng(2);
    std::vector<Attention> models;
    for (int64_t kv : kv_heads) models.emplace_back(chapter_args(dim, heads, kv, max_context + steps), rng);
    RopeTable rope(chapter_args(dim, heads, heads, max_context + steps), models[0].head_dim);
    std::printf("Chapter 2 — attention with %lld query heads of %lld over dim %lld; RoPE half-split, softmax scale 1/sqrt(%lld)\n\n",
                (long long)heads, (long long)models[0].head_dim, (long long)dim, (long long)models[0].head_dim);
    // Each section prints its table first; its checks are printed with it (`check ... ok`).
    print_sizes(models, max_context, checks);
    print_exactness(models, rope, rng, checks);
    print_decode(models, rope, batch, max_context, steps, rng);
    const bool default_model = dim == 256 && heads == 8 && kv_heads == std::vector<int64_t>{8, 2, 1};
    heatmap(models.size() > 1 ? models[1] : models[0], rope, out, default_model, checks);
    std::printf("done in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ch02_attention: error: %s\n", e.what());
    return 1;
  }
  return checks.exit_code();
}
