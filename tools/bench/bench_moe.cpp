// tools/bench/bench_moe.cpp — see bench_moe.h.
//
// One timed step = forward with the tape on, then backward from a fixed seed gradient (all parameter
// and input gradients are cleared before each step, so accumulation does not grow). The median of `reps`
// steps after one warm-up step is reported.
#include "tools/bench/bench_moe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/runtime.h"
#include "models/layers.h"
#include "models/moe.h"
#include "ops/ops.h"

namespace sg::bench {

static double median_ms(const std::function<void()>& step, int reps) {
  step();  // warm-up: allocator cache, page faults
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static void clear_grads(Module& m) {
  for (auto& [name, p] : m.named_parameters()) p->zero_grad();
}

int bench_moe(bool json) {
  const int64_t tokens = 1024, dim = 128, active_width = 256;
  struct Case {
    int64_t experts, topk;
  };
  const std::vector<Case> cases = {{8, 2}, {16, 4}, {32, 8}, {64, 8}, {128, 8}, {256, 8}};
  const int reps = 5;
  Rng rng(0);
  Tensor x = Tensor::randn({tokens, dim}, rng).requires_grad_();  // a layer inside a network: dx is needed
  Tensor seed = Tensor::randn({tokens, dim}, rng);

  if (!json)
    std::printf("MoE layer vs dense SwiGLU FFN of equal active parameters, forward + backward, %lld tokens, dim %lld, "
                "%d threads\n%8s %5s %6s %11s %12s %10s %8s %11s\n",
                (long long)tokens, (long long)dim, num_threads(), "experts", "top-k", "inter", "tok/expert", "moe ms",
                "dense ms", "ratio", "moe us/tok");
  for (const Case& c : cases) {
    ModelArgs a;
    a.dim = dim;
    a.n_routed_experts = c.experts;
    a.n_activated_experts = c.topk;
    a.moe_inter_dim = active_width / c.topk;
    a.n_shared_experts = 0;
    a.n_expert_groups = c.experts >= 64 ? 8 : 1;  // V3-style group-limited routing once there are many experts
    a.n_limited_groups = c.experts >= 64 ? 4 : 1;
    a.score_func = "sigmoid";
    a.route_scale = 2.5;
    a.gate_bias = true;
    MoE moe(a, rng);
    MLP dense(dim, active_width, rng);
    double moe_ms = median_ms(
        [&] {
          clear_grads(moe);
          x.zero_grad();
          moe.forward(x).backward(seed);
        },
        reps);
    double dense_ms = median_ms(
        [&] {
          clear_grads(dense);
          x.zero_grad();
          dense.forward(x).backward(seed);
        },
        reps);
    double per_expert = (double)(tokens * c.topk) / (double)c.experts;
    if (json)
      std::printf("{\"bench\":\"moe\",\"tokens\":%lld,\"dim\":%lld,\"experts\":%lld,\"topk\":%lld,\"moe_inter_dim\":%lld,"
                  "\"dense_inter_dim\":%lld,\"threads\":%d,\"moe_ms\":%.4f,\"dense_ms\":%.4f,\"ratio\":%.3f}\n",
                  (long long)tokens, (long long)dim, (long long)c.experts, (long long)c.topk, (long long)a.moe_inter_dim,
                  (long long)active_width, num_threads(), moe_ms, dense_ms, moe_ms / dense_ms);
    else
      std::printf("%8lld %5lld %6lld %11.0f %12.3f %10.3f %7.2fx %11.2f\n", (long long)c.experts, (long long)c.topk,
                  (long long)a.moe_inter_dim, per_expert, moe_ms, dense_ms, moe_ms / dense_ms, 1e3 * moe_ms / tokens);
  }
  return 0;
}

}  // namespace sg::bench
