// tools/bench/bench_train.cpp — see bench_train.h.
#include "tools/bench/bench_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/device.h"
#include "autograd/runtime.h"
#include "models/transformer.h"
#include "ops/ops.h"
#include "train/clip.h"
#include "train/config_yaml.h"
#include "train/optim.h"

namespace sg::bench {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
// The same after the device's kernels finished (a GPU's launches return at once; on the CPU: ms_since).
double ms_since_synced(Device d, Clock::time_point t0) {
  device_synchronize(d);
  return ms_since(t0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

const char* kComponents[] = {"attention", "moe_ffn", "head_loss", "mtp", "other"};

// A tape node's scope -> the component it belongs to.
std::string component_of(const std::string& scope) {
  if (scope.rfind("mtp", 0) == 0) return "mtp";
  if (scope.find("attn_norm") != std::string::npos || scope.find("ffn_norm") != std::string::npos) return "other";
  if (scope.find(".attn") != std::string::npos) return "attention";
  if (scope.find(".ffn") != std::string::npos) return "moe_ffn";
  if (scope.rfind("head", 0) == 0 || scope.rfind("loss", 0) == 0 || scope.rfind("norm", 0) == 0) return "head_loss";
  return "other";
}

// Transformer::loss, module by module, with the time of each module call added to `fwd` (ms).
// Same scopes as models/transformer.cpp, so the backward hooks can read the components off the tape.
Tensor timed_loss(Transformer& m, const Tensor& tokens_in, const Tensor& targets_in, double mtp_lambda, double alpha,
                  std::map<std::string, double>& fwd) {
  const Device dev = m.device();
  const Tensor tokens = tokens_in.to(dev), targets = targets_in.to(dev);
  device_synchronize(dev);
  auto t = Clock::now();
  Tensor h;
  {
    ScopeGuard s("embed");
    h = m.embed.forward(tokens);
  }
  fwd["other"] += ms_since_synced(dev, t);
  std::vector<MoEOutput> routed;  // the main MoE blocks' routing, for the balance loss
  for (size_t i = 0; i < m.layers.size(); i++) {
    Block& b = *m.layers[i];
    ScopeGuard sl("layers." + std::to_string(i));
    t = Clock::now();
    Tensor x;
    {
      ScopeGuard s("attn_norm");
      x = b.attn_norm.forward(h);
    }
    fwd["other"] += ms_since_synced(dev, t);
    t = Clock::now();
    {
      ScopeGuard s("attn");
      x = b.attn->forward(x, 0, m.rope, nullptr, b.attn_mode);
    }
    fwd["attention"] += ms_since_synced(dev, t);
    t = Clock::now();
    Tensor h1 = add(h, x);
    {
      ScopeGuard s("ffn_norm");
      x = b.ffn_norm.forward(h1);
    }
    fwd["other"] += ms_since_synced(dev, t);
    t = Clock::now();
    {
      ScopeGuard s("ffn");
      if (b.moe) {
        routed.push_back(b.moe->forward_routed(x));
        x = routed.back().y;
      } else {
        x = b.dense_ffn->forward(x);
      }
    }
    fwd["moe_ffn"] += ms_since_synced(dev, t);
    t = Clock::now();
    h = add(h1, x);
    fwd["other"] += ms_since_synced(dev, t);
  }
  t = Clock::now();
  Tensor h0;
  {
    ScopeGuard s("norm");
    h0 = m.norm.forward(h);
  }
  Tensor total;
  {
    ScopeGuard s("loss");
    total = cross_entropy(m.logits_from_hidden(h0), targets);
  }
  fwd["head_loss"] += ms_since_synced(dev, t);
  t = Clock::now();
  const int64_t S = tokens.size(1), D = (int64_t)m.mtp.size();
  Tensor h_prev = h0, mtp_total;
  for (int64_t k = 0; k < D && k + 1 < S; k++) {
    const int64_t d = k + 1, L = S - d;
    Tensor hk = m.mtp_forward(k, contiguous(slice(tokens, 1, d, S)), slice(h_prev, 1, 0, L));
    Tensor lk;
    {
      ScopeGuard s("mtp." + std::to_string(k) + ".loss");
      lk = cross_entropy(m.mtp_logits(k, hk), contiguous(slice(targets, 1, d, S)));
    }
    mtp_total = mtp_total.defined() ? add(mtp_total, lk) : lk;
    h_prev = hk;
  }
  if (mtp_total.defined() && mtp_lambda != 0.0) total = add(total, mul(mtp_total, mtp_lambda / (double)D));
  fwd["mtp"] += ms_since_synced(dev, t);
  t = Clock::now();
  if (alpha > 0) {
    Tensor bal;
    int n = 0;
    for (const MoEOutput& r : routed) {
      ScopeGuard s("layers.ffn");
      Tensor bl = mean(MoE::balance_loss(r, alpha));
      bal = bal.defined() ? add(bal, bl) : bl;
      n++;
    }
    if (n) total = add(total, mul(bal, 1.0 / n));
  }
  fwd["moe_ffn"] += ms_since_synced(dev, t);
  return total;
}

// Backward with a time stamp at every tape node; intervals charged to the node's component (ms).
void timed_backward(const Tensor& loss, std::map<std::string, double>& bwd) {
  const Device dev = loss.device();
  std::vector<std::pair<Clock::time_point, std::string>> stamps;
  auto order = topological_order(loss);
  stamps.reserve(order.size() + 1);
  for (auto& node : order) {
    std::string comp = component_of(node->scope);
    node->hooks.push_back([&stamps, comp, dev](Tensor&) {
      device_synchronize(dev);  // the node's kernels done: the interval is theirs
      stamps.push_back({Clock::now(), comp});
    });
  }
  loss.backward();
  device_synchronize(dev);
  auto end = Clock::now();
  for (size_t i = 0; i < stamps.size(); i++) {
    auto next = i + 1 < stamps.size() ? stamps[i + 1].first : end;
    bwd[stamps[i].second] += std::chrono::duration<double, std::milli>(next - stamps[i].first).count();
  }
}

}  // namespace

int bench_train(const std::string& config_path, bool json, int steps, const std::string& device_name_override) {
  PretrainConfig cfg = load_pretrain_config(config_path);
  TrainConfig& tc = cfg.train;
  if (!device_name_override.empty()) tc.device = device_name_override;
  const Device device = parse_device(tc.device, config_path + ": train.device");
  set_num_threads((int)tc.threads);
  ModelArgs args = cfg.model;
  Rng rng(tc.seed);
  Transformer model(args, rng);
  model.to(device);  // the batches stay on the host: the model copies them (B·T token ids), as the trainer's do
  NamedParameters params = model.named_parameters();
  AdamWConfig ac;
  ac.lr = tc.lr;
  ac.weight_decay = tc.weight_decay;
  AdamW opt(params, ac);
  const int64_t B = tc.batch_size, T = tc.seq_len, V = args.vocab_size;
  auto batch = [&](Tensor& x, Tensor& y) {
    x = Tensor::randint({B, T}, rng, 0, V);
    y = Tensor::randint({B, T}, rng, 0, V);
  };
  steps = std::max(steps, 1);

  // 1. Whole steps: forward + backward + clip + AdamW, as the trainer runs them.
  std::vector<double> step_ms;
  allocator_reset_peak(device);
  for (int s = 0; s < steps + 2; s++) {
    Tensor x, y;
    batch(x, y);
    auto t0 = Clock::now();
    zero_grad(params);
    LossOutput lo = model.loss(x, y, tc.mtp_lambda, tc.balance_alpha);
    lo.loss.backward();
    clip_grad_norm(params, tc.grad_clip > 0 ? tc.grad_clip : 1e30);
    opt.step(tc.lr);
    if (tc.bias_gamma > 0) model.update_gate_biases(lo.expert_loads, tc.bias_gamma);
    device_synchronize(device);  // a GPU's kernels are asynchronous: the step ends when its last kernel does
    if (s >= 2) step_ms.push_back(ms_since(t0));
  }
  const int64_t peak = allocator_stats(device).peak_bytes;
  const double ms = median(step_ms), tok_s = (double)(B * T) / (ms / 1000.0);

  // 2. The breakdown, medians per component over `steps` instrumented steps.
  std::map<std::string, std::vector<double>> fwd_ms, bwd_ms;
  std::vector<double> opt_ms, check;
  for (int s = 0; s < steps; s++) {
    Tensor x, y;
    batch(x, y);
    zero_grad(params);
    std::map<std::string, double> fwd, bwd;
    Tensor loss = timed_loss(model, x, y, tc.mtp_lambda, tc.balance_alpha, fwd);
    if (s == 0) {
      NoGradGuard ng;
      double ref = model.loss(x, y, tc.mtp_lambda, tc.balance_alpha).loss.item();
      check.push_back(std::fabs(ref - loss.item()));
    }
    timed_backward(loss, bwd);
    device_synchronize(device);
    auto t0 = Clock::now();
    clip_grad_norm(params, tc.grad_clip > 0 ? tc.grad_clip : 1e30);
    opt.step(tc.lr);
    device_synchronize(device);
    opt_ms.push_back(ms_since(t0));
    for (const char* c : kComponents) fwd_ms[c].push_back(fwd[c]), bwd_ms[c].push_back(bwd[c]);
  }

  std::vector<std::string> comps(std::begin(kComponents), std::end(kComponents));
  if (json) {
    std::printf("{\"bench\": \"train\", \"config\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"batch\": %lld, \"seq_len\": %lld, "
                "\"parameters\": %lld, \"step_ms\": %.2f, \"tokens_per_s\": %.1f, \"peak_bytes\": %lld, "
                "\"optimizer_ms\": %.2f, \"loss_check_abs_diff\": %.3g",
                config_path.c_str(), describe_device(device).c_str(), num_threads(), (long long)B, (long long)T, (long long)model.num_parameters(), ms,
                tok_s, (long long)peak, median(opt_ms), check.empty() ? 0.0 : check[0]);
    for (auto& c : comps)
      std::printf(", \"forward_%s_ms\": %.2f, \"backward_%s_ms\": %.2f", c.c_str(), median(fwd_ms[c]), c.c_str(),
                  median(bwd_ms[c]));
    std::printf("}\n");
    return 0;
  }
  std::printf("bench train: %s — %lld parameters, batch %lld x seq %lld, %d threads, device %s\n", config_path.c_str(),
              (long long)model.num_parameters(), (long long)B, (long long)T, num_threads(), describe_device(device).c_str());
  std::printf("  training step (fwd + bwd + clip + AdamW): %.1f ms median of %d  ->  %.0f tokens/s\n", ms, steps, tok_s);
  std::printf("  peak tensor memory (%s): %.1f MiB\n\n", device_name(device), (double)peak / (1024.0 * 1024.0));
  std::printf("  %-11s %12s %12s\n", "component", "forward ms", "backward ms");
  double fsum = 0, bsum = 0;
  for (auto& c : comps) {
    double f = median(fwd_ms[c]), b = median(bwd_ms[c]);
    fsum += f, bsum += b;
    std::printf("  %-11s %12.2f %12.2f\n", c.c_str(), f, b);
  }
  std::printf("  %-11s %12.2f %12.2f\n", "total", fsum, bsum);
  std::printf("  %-11s %12.2f\n", "optimizer", median(opt_ms));
  std::printf("\n  (breakdown: instrumented re-run; its loss matches model.loss() to %.2g; backward per node by tape hooks)\n",
              check.empty() ? 0.0 : check[0]);
  return 0;
}

}  // namespace sg::bench
