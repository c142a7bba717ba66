// tools/bench/bench_ops.cpp — see bench_ops.h.
//
// Bytes counted = bytes the op must read + bytes it must write (e.g. add of two n-float tensors:
// 12n). The memcpy baseline copies half that many bytes (read + write = the same traffic), so
// "% memcpy" says how close the op comes to streaming memory at the machine's copy speed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/allocator.h"
#include "autograd/runtime.h"
#include "ops/ops.h"
#include "tools/bench/bench_ops.h"

namespace sg::bench {

static double median_seconds(const std::function<void()>& fn, int reps) {
  fn();  // warm-up: page faults, allocator cache
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static double memcpy_gbps(size_t traffic_bytes, int reps) {
  size_t n = traffic_bytes / 2;
  std::vector<char> src(n, 1), dst(n, 0);
  // The copy runs on the same threads as the ops it is compared with.
  double s = median_seconds(
      [&] {
        parallel_for((int64_t)n, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dst.data() + b, src.data() + b, e - b); });
      },
      reps);
  return (double)traffic_bytes / s / 1e9;
}

int bench_ops(const OpsBenchOptions& opt) {
  NoGradGuard no_grad;
  int reps = opt.quick ? 5 : 15;
  struct Size {
    int64_t rows, cols;
  };
  std::vector<Size> sizes = {{4096, 1024}, {16384, 1024}};   // 16 MiB (around L3) and 64 MiB (DRAM) of f32
  if (!opt.quick) sizes.push_back({2048 * 8, 4096});           // 256 MiB: [tokens, vocab]-sized logits
  Rng rng(0);
  if (!opt.json)
    std::printf("%-10s %8s %6s %3s %9s %9s %10s %8s\n", "op", "rows", "cols", "thr", "ms", "GB/s", "memcpyGB/s", "%memcpy");
  for (const Size& s : sizes) {
    Tensor x = Tensor::randn({s.rows, s.cols}, rng);
    Tensor y = Tensor::randn({s.rows, s.cols}, rng);
    Tensor w = Tensor::randn({s.cols}, rng);
    double bytes1 = (double)x.numel() * 4;   // one f32 tensor of this size
    struct Case {
      const char* name;
      double traffic;
      std::function<void()> run;
    };
    std::vector<Case> cases = {
        {"softmax", 2 * bytes1, [&] { softmax(x, -1); }},
        {"rms_norm", 2 * bytes1, [&] { rms_norm(x, w, 1e-6); }},
        {"add", 3 * bytes1, [&] { add(x, y); }},
        {"mul", 3 * bytes1, [&] { mul(x, y); }},
        {"silu", 2 * bytes1, [&] { silu(x); }},
        {"exp", 2 * bytes1, [&] { sg::exp(x); }},
    };
    std::vector<int> thread_counts = {1, std::max(1, num_threads())};
    if (thread_counts[1] == 1) thread_counts.pop_back();
    int saved_threads = num_threads();
    for (int th : thread_counts) {
      set_num_threads(th);
      double base2 = memcpy_gbps((size_t)(2 * bytes1), reps);
      double base3 = memcpy_gbps((size_t)(3 * bytes1), reps);
      for (const Case& c : cases) {
        double sec = median_seconds(c.run, reps);
        double gbps = c.traffic / sec / 1e9;
        double base = c.traffic > 2.5 * bytes1 ? base3 : base2;
        if (opt.json)
          std::printf("{\"bench\":\"ops\",\"op\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"threads\":%d,\"ms\":%.4f,"
                      "\"gbps\":%.3f,\"memcpy_gbps\":%.3f}\n",
                      c.name, (long long)s.rows, (long long)s.cols, th, sec * 1e3, gbps, base);
        else
          std::printf("%-10s %8lld %6lld %3d %9.3f %9.2f %10.2f %7.0f%%\n", c.name, (long long)s.rows, (long long)s.cols, th,
                      sec * 1e3, gbps, base, 100.0 * gbps / base);
      }
    }
    set_num_threads(saved_threads);
  }
  if (!opt.json) {
    auto st = cpu_allocator_stats();
    std::printf("peak tensor memory: %.1f MiB (caching allocator: %lld of %lld allocations served from cache)\n",
                st.peak_bytes / 1048576.0, (long long)st.n_cache_hits, (long long)st.n_allocs);
  }
  return 0;
}

}  // namespace sg::bench
