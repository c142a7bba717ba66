// tools/chapters/ch06_mtp.cpp — Chapter 6: Multi-Token Prediction and speculative decoding. Read
// ch06_mtp.md beside this file.
//
//   1. The MTP training signal. Generated stories → byte-level BPE → a small DeepSeek model (MLA, dense
//      SwiGLU, D = 2 MTP modules sharing the embedding and the head) trained with AdamW on
//      L = L_main + (λ/D)·(L¹ + L²). Printed every 25 steps: the main loss (predicts token i+1) and each
//      depth's loss (depth k predicts token i+k+1: further ahead, so higher). runs/ch06/loss.png.
//   2. Speculative decoding with the MTP drafts vs plain greedy decoding, on held-out story openings:
//      the same tokens (checked), the acceptance rate of the drafts, tokens per main-model forward, and
//      the measured wall-clock speed-up; with both modules drafting (D = 2) and with the first only.
//   The trained model is saved as runs/ch06/model (+ runs/ch06/tokenizer.bpe) for `seekgrad generate`.
//   At the end, the numbers ch06_mtp.md promises are checked (sg::chapter::Checks; exit 1 if one fails).
//
//   build/bin/ch06_mtp [--steps 200] [--stories 600] [--vocab 384] [--layers 6] [--dim 64] [--lambda 0.3]
//                      [--max-new 64] [--out runs/ch06]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "data/generators.h"
#include "data/tokenizer.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "ops/nn.h"
#include "ops/ops.h"
#include "train/clip.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/schedule.h"
#include "tools/chapters/chapter_check.h"

using namespace sg;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// B random windows of T+1 tokens from ids[lo, hi): inputs [B,T] and targets (the next tokens) [B,T].
void sample_batch(const std::vector<int32_t>& ids, size_t lo, size_t hi, int64_t B, int64_t T, Rng& rng, Tensor& x, Tensor& y) {
  std::vector<int64_t> xs(B * T), ys(B * T);
  for (int64_t b = 0; b < B; b++) {
    size_t s = lo + rng.randint(hi - lo - (size_t)T - 1);
    for (int64_t t = 0; t < T; t++) {
      xs[b * T + t] = ids[s + t];
      ys[b * T + t] = ids[s + t + 1];
    }
  }
  x = Tensor::from_vector(xs, {B, T});
  y = Tensor::from_vector(ys, {B, T});
}

std::vector<double> moving_average(const std::vector<double>& v, size_t w) {
  std::vector<double> out;
  double sum = 0;
  for (size_t i = 0; i < v.size(); i++) {
    sum += v[i];
    if (i >= w) sum -= v[i - w];
    out.push_back(sum / (double)std::min(i + 1, w));
  }
  return out;
}

struct SpecRow {
  double acceptance = 0, tokens_per_forward = 0, speedup = 0, greedy_s = 0, spec_s = 0;
  int64_t drafted = 0, accepted = 0, generated = 0, forwards = 0;
  bool identical = true;  // speculative == greedy, token by token, on every prompt
};

// Greedy vs speculative on every prompt; compare_speculative throws if a single token differs (that
// is recorded in `identical`, printed, and fails the chapter's check). Times: the fastest of `repeats`
// runs each (the machine may be shared).
SpecRow run_speculative(Transformer& model, const std::vector<std::vector<int64_t>>& prompts, int64_t max_new, int repeats) {
  SpecRow row;
  for (const auto& p : prompts) {
    SpeculativeStats st;
    double greedy = INFINITY, spec = INFINITY;
    try {
      for (int r = 0; r < repeats; r++) {
        st = compare_speculative(model, p, max_new);
        greedy = std::min(greedy, st.baseline_seconds);
        spec = std::min(spec, st.seconds);
      }
    } catch (const std::exception& e) {
      std::printf("  speculative decoding differs from greedy: %s\n", e.what());
      row.identical = false;
      continue;
    }
    row.drafted += st.drafted;
    row.accepted += st.accepted;
    row.generated += st.generated;
    row.forwards += st.main_forwards;
    row.greedy_s += greedy;
    row.spec_s += spec;
  }
  row.acceptance = (double)row.accepted / (double)std::max<int64_t>(1, row.drafted);
  row.tokens_per_forward = (double)row.generated / (double)row.forwards;
  row.speedup = row.greedy_s / row.spec_s;
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Chapter 6: Multi-Token Prediction (MTP) and speculative decoding"};
  int steps = 200, stories = 600, vocab = 384, max_new = 64, layers = 6, dim = 64;
  double lambda = 0.3;
  std::string out = "runs/ch06";
  app.add_option("--steps", steps, "AdamW steps")->check(CLI::PositiveNumber);
  app.add_option("--stories", stories, "generated stories in the corpus")->check(CLI::Range(50, 100000));
  app.add_option("--vocab", vocab, "BPE vocabulary size")->check(CLI::Range(300, 8192));
  app.add_option("--max-new", max_new, "tokens generated per prompt in part 2")->check(CLI::Range(2, 100));
  app.add_option("--layers", layers, "main-model layers (the MTP modules have one block each)")->check(CLI::Range(1, 32));
  app.add_option("--dim", dim, "model width")->check(CLI::Range(16, 1024));
  app.add_option("--lambda", lambda, "weight λ of the MTP loss (0: the MTP modules learn nothing)")->check(CLI::Range(0.0, 10.0));
  app.add_option("--out", out, "output directory for the PNG");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::create_directories(out);
  const auto t_start = Clock::now();

  // ---- data -------------------------------------------------------------------------------------
  const std::string corpus = data::generate_story_corpus(6, stories);
  data::Tokenizer tok = data::Tokenizer::train(corpus, vocab);
  const std::vector<int32_t> ids = tok.encode(corpus);
  const size_t n_train = ids.size() * 9 / 10;  // the last 10 % is held out (loss and prompts)
  std::printf("Chapter 6 — Multi-Token Prediction and speculative decoding  (%d threads)\n\n", sg::num_threads());
  std::printf("data: %d generated stories, %zu bytes -> %zu tokens (BPE vocab %d, %.2f bytes/token); %zu train / %zu held out\n",
              stories, corpus.size(), ids.size(), tok.vocab_size(), (double)corpus.size() / (double)ids.size(), n_train,
              ids.size() - n_train);

  // ---- model: a small DeepSeek with two MTP modules ------------------------------------------------
  ModelArgs a;
  a.vocab_size = tok.vocab_size();
  a.dim = dim;
  a.n_layers = layers;
  a.n_dense_layers = layers;  // dense SwiGLU everywhere: this chapter is about MTP, not MoE (ch05)
  a.inter_dim = 3 * dim;
  a.n_heads = 4;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 32;
  a.qk_nope_head_dim = 16;
  a.qk_rope_head_dim = 16;
  a.v_head_dim = 16;
  a.max_batch_size = 8;
  a.max_seq_len = 160;
  a.original_seq_len = 160;  // no YaRN
  a.n_mtp_modules = 2;
  a.validate("ch06_mtp");
  Rng init(60);
  Transformer model(a, init);
  int64_t n_main = 0, n_mtp = 0;
  for (auto& [name, t] : model.named_parameters()) (name.rfind("mtp.", 0) == 0 ? n_mtp : n_main) += t->numel();
  std::printf("model: dim %lld, %lld layers (MLA + SwiGLU), %lld MTP modules; %lld main parameters + %lld in the MTP modules\n",
              (long long)a.dim, (long long)a.n_layers, (long long)a.n_mtp_modules, (long long)n_main, (long long)n_mtp);

  // ---- 1. training with the MTP loss ---------------------------------------------------------------
  const int64_t B = 8, T = 64;
  const double ln_v = std::log((double)a.vocab_size);
  NamedParameters params = model.named_parameters();
  AdamW opt(params, AdamWConfig{3e-3, 0.9, 0.95, 1e-8, 0.1});
  LrSchedule sched = LrSchedule::warmup_cosine(3e-3, 3e-4, std::min(20, steps / 10), steps);
  Rng data_rng(61);
  std::vector<double> xs, main_curve;
  std::vector<std::vector<double>> mtp_curve(a.n_mtp_modules);
  std::printf("\n== 1. training: L = L_main + (λ/D)·Σ_k L^k, λ = %.1f, D = %lld; %lld x %lld tokens per step ==\n", lambda,
              (long long)a.n_mtp_modules, (long long)B, (long long)T);
  std::printf("  (means over the last 25 steps; L^k predicts token i+k+1, L_main token i+1; ln V = %.3f)\n", ln_v);
  std::printf("  %6s %10s %10s %10s %10s %8s\n", "step", "L_main", "L^1 (i+2)", "L^2 (i+3)", "total", "time");
  auto t_train = Clock::now();
  double acc_main = 0, acc_total = 0;
  std::vector<double> acc_mtp(a.n_mtp_modules, 0.0);
  int acc_n = 0;
  struct Window {
    int step;
    double main, mtp1, mtp2;
  };
  std::vector<Window> windows;  // the printed rows: means over the steps since the previous one
  for (int step = 0; step < steps; step++) {
    Tensor x, y;
    sample_batch(ids, 0, n_train, B, T, data_rng, x, y);
    LossOutput lo = model.loss(x, y, lambda, 0.0);
    zero_grad(params);
    lo.loss.backward();
    clip_grad_norm(params, 1.0);
    opt.step(sched.lr_at(step));
    xs.push_back(step + 1);
    main_curve.push_back(lo.main_loss.item());
    acc_main += main_curve.back();
    acc_total += lo.loss.item();
    for (size_t k = 0; k < lo.mtp_losses.size(); k++) {
      mtp_curve[k].push_back(lo.mtp_losses[k].item());
      acc_mtp[k] += mtp_curve[k].back();
    }
    acc_n++;
    if (step == 0 || (step + 1) % 25 == 0 || step + 1 == steps) {
      std::printf("  %6d %10.4f %10.4f %10.4f %10.4f %7.1fs\n", step + 1, acc_main / acc_n, acc_mtp[0] / acc_n,
                  acc_mtp[1] / acc_n, acc_total / acc_n, seconds_since(t_train));
      windows.push_back({step + 1, acc_main / acc_n, acc_mtp[0] / acc_n, acc_mtp[1] / acc_n});
      acc_main = acc_total = 0;
      std::fill(acc_mtp.begin(), acc_mtp.end(), 0.0);
      acc_n = 0;
    }
  }
  // Held-out losses: the same windows for every head. Depth k has no target for the first k positions of
  // a window (the ones with the least context), so the main loss is also shown over depth k's targets.
  const int n_eval = 8;
  double m = 0;
  std::vector<double> lk(a.n_mtp_modules, 0.0), mk(a.n_mtp_modules, 0.0);
  {
    NoGradGuard no_grad;
    Rng held(62);
    for (int i = 0; i < n_eval; i++) {
      Tensor x, y;
      sample_batch(ids, n_train, ids.size(), B, T, held, x, y);
      LossOutput lo = model.loss(x, y, lambda, 0.0);
      Tensor logits = model.forward(x);
      m += lo.main_loss.item();
      for (int64_t k = 0; k < a.n_mtp_modules; k++) {
        lk[k] += lo.mtp_losses[k].item();
        std::vector<int64_t> yk = y.to_i64_vector();
        for (int64_t b = 0; b < B; b++)
          for (int64_t t = 0; t <= k; t++) yk[b * T + t] = -100;  // targets t_1 .. t_{k+1}: not depth k+1's
        mk[k] += cross_entropy(logits, Tensor::from_vector(yk, {B, T})).item();
      }
    }
    std::printf("  held out (%d batches):  L_main %.4f (perplexity %.2f)\n", n_eval, m / n_eval, std::exp(m / n_eval));
    for (int64_t k = 0; k < a.n_mtp_modules; k++)
      std::printf("                          L^%lld    %.4f (perplexity %.2f)   L_main on the same targets %.4f\n",
                  (long long)k + 1, lk[k] / n_eval, std::exp(lk[k] / n_eval), mk[k] / n_eval);
  }
  // No peeking: at the LAST position of a window the target t_T is not among the inputs t_0 .. t_{T-1} at
  // all, so no head can have copied it from its input. Each head predicts t_T there: the main head from
  // h⁰_{T-1}, depth 1 from (h⁰_{T-2}, t_{T-1}), depth 2 from (h¹_{T-3}, t_{T-1}) — all from t_0 .. t_{T-1}.
  const int n_last = 16;
  double lm = 0, l1 = 0, l2 = 0;
  {
    NoGradGuard no_grad;
    Rng held(63);
    for (int i = 0; i < n_last; i++) {
      Tensor x, y;
      sample_batch(ids, n_train, ids.size(), B, T, held, x, y);
      Tensor last = contiguous(narrow(y, 1, T - 1, 1));  // t_T [B,1]
      Tensor h0 = model.hidden(x);
      lm += cross_entropy(model.logits_from_hidden(narrow(h0, 1, T - 1, 1)), last).item();
      Tensor h1 = model.mtp_forward(0, contiguous(slice(x, 1, 1, T)), slice(h0, 1, 0, T - 1));
      l1 += cross_entropy(model.mtp_logits(0, narrow(h1, 1, T - 2, 1)), last).item();
      Tensor h2 = model.mtp_forward(1, contiguous(slice(x, 1, 2, T)), slice(h1, 1, 0, T - 2));
      l2 += cross_entropy(model.mtp_logits(1, narrow(h2, 1, T - 3, 1)), last).item();
    }
    std::printf("  the last token of %d held-out windows (not among any head's inputs):  main %.4f   depth 1 %.4f   depth 2 %.4f\n",
                n_last * (int)B, lm / n_last, l1 / n_last, l2 / n_last);
  }
  {
    std::vector<Series> series = {{"main (token i+1)", xs, moving_average(main_curve, 10), colors::blue},
                                  {"MTP depth 1 (token i+2)", xs, moving_average(mtp_curve[0], 10), colors::orange},
                                  {"MTP depth 2 (token i+3)", xs, moving_average(mtp_curve[1], 10), colors::green}};
    LinePlotOptions po;
    po.title = "ch06: main and MTP losses (10-step moving average)";
    po.y_label = "cross-entropy (nats)";
    po.reference = ReferenceLine{ln_v, "ln(V) chance", colors::red};
    write_line_plot_png(out + "/loss.png", series, po);
    std::printf("  wrote %s/loss.png\n", out.c_str());
  }

  // ---- 2. speculative decoding ------------------------------------------------------------------------
  // Prompts: the openings of held-out stories (the first 8 tokens after an <|endoftext|>).
  const int32_t eot = tok.token_id("<|endoftext|>");
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = n_train; i + 9 < ids.size() && prompts.size() < 6; i++) {
    if (ids[i] != eot) continue;
    size_t s = i + 1;
    while (s < ids.size() && tok.id_to_bytes(ids[s]) == "\n") s++;
    if (s + 8 >= ids.size()) break;
    prompts.emplace_back(ids.begin() + (long)s, ids.begin() + (long)s + 8);
  }
  std::printf("\n== 2. speculative decoding: %zu held-out story openings, %d new tokens each, greedy ==\n", prompts.size(), max_new);
  {
    std::vector<int64_t> g = generate(model, prompts[0], max_new);
    std::vector<int32_t> p32(prompts[0].begin(), prompts[0].end()), g32(g.begin(), g.end());
    std::printf("  e.g. \"%s|%s\"\n", data::escape_bytes(tok.decode(p32)).c_str(), data::escape_bytes(tok.decode(g32)).c_str());
  }
  compare_speculative(model, prompts[0], 8);  // warm-up (allocator caches, thread pool)
  SpecRow d2 = run_speculative(model, prompts, max_new, 2);
  // The same model drafting with module 1 only: move module 2 aside for a moment.
  std::unique_ptr<MTPModule> second = std::move(model.mtp.back());
  model.mtp.pop_back();
  SpecRow d1 = run_speculative(model, prompts, max_new, 2);
  model.mtp.push_back(std::move(second));

  std::printf("  %-22s %10s %12s %14s %10s %10s %9s\n", "drafts per step", "accepted", "acceptance", "tokens/forward",
              "greedy", "spec.", "speed-up");
  auto print_row = [](const char* name, const SpecRow& r) {
    std::printf("  %-22s %4lld/%-5lld %12.2f %14.2f %9.3fs %9.3fs %8.2fx\n", name, (long long)r.accepted, (long long)r.drafted,
                r.acceptance, r.tokens_per_forward, r.greedy_s, r.spec_s, r.speedup);
  };
  print_row("D = 1 (module 1)", d1);
  print_row("D = 2 (modules 1, 2)", d2);
  if (d1.identical && d2.identical)
    std::printf("  output identical to plain greedy decoding for every prompt (checked token by token)\n");
  std::printf("  plain greedy: 1 token per main forward; a draft accepted with rate a gives up to 1 + a (D = 1)\n");

  // The trained model (HF layout, MTP layers included) and its tokenizer, for `seekgrad generate`.
  save_model_dir(model, out + "/model");
  tok.save(out + "/tokenizer.bpe");
  std::printf("\nwrote %s/model (config.json + model.safetensors) and %s/tokenizer.bpe; try\n"
              "  seekgrad generate --model %s/model --tokenizer %s/tokenizer.bpe --prompt \"Once upon a time\" --speculative\n",
              out.c_str(), out.c_str(), out.c_str(), out.c_str());
  std::printf("\ntotal %.1f s\n", seconds_since(t_start));

  // ---- the numbers ch06_mtp.md promises ------------------------------------------------------------
  // Losses and draft counts are deterministic (fixed seeds); the bounds are the story's, with room for
  // another compiler's rounding. Seconds and speed-ups are printed, never checked.
  std::printf("\n== the numbers ch06_mtp.md promises ==\n");
  chapter::Checks checks;
  const Window& first = windows.front();
  checks.in_range("step 1: L_main - ln V", first.main - ln_v, -0.2, 0.8);
  checks.in_range("step 1: L^1 - ln V", first.mtp1 - ln_v, -0.2, 0.8);
  checks.in_range("step 1: L^2 - ln V", first.mtp2 - ln_v, -0.2, 0.8);
  // The default run's story; other arguments ("What to try" in the .md) print the same tables, unchecked.
  const bool defaults = steps == 200 && stories == 600 && vocab == 384 && max_new == 64 && layers == 6 && dim == 64 &&
                        lambda == 0.3;
  if (defaults) {
    double early_gap = 0;  // L^1 − L_main, averaged over the rows of steps 26..75
    for (const Window& w : windows)
      if (w.step == 50 || w.step == 75) early_gap += (w.mtp1 - w.main) / 2;
    checks.at_least("steps 26-75: L^1 - L_main (MTP starts behind)", early_gap, 0.2);
    checks.at_most("held out: L_main", m / n_eval, 2.0);
    checks.at_least("held out: L_main - L^2 (depth 2 ends ahead)", (m - lk[1]) / n_eval, 0.15);
    checks.at_most("held out: |L_main on depth-2 targets - L_main|", std::abs(mk[1] - m) / n_eval, 0.05);
    checks.at_most("last token: depth 2 - main (on par or better)", (l2 - lm) / n_last, 0.05);
    checks.in_range("D = 1: draft acceptance", d1.acceptance, 0.35, 0.75);
    checks.at_least("D = 1: tokens per main forward", d1.tokens_per_forward, 1.3);
    checks.at_least("D = 2 - D = 1: tokens per main forward", d2.tokens_per_forward - d1.tokens_per_forward, 0.1);
    checks.at_least("D = 1 - D = 2: acceptance per draft", d1.acceptance - d2.acceptance, 0.05);
  }
  checks.that("speculative == greedy, every prompt, D = 1 and D = 2", d1.identical && d2.identical);
  return checks.exit_code();
}
