// tools/bench/bench_attention.cpp — see bench_attention.h.
//
// Each variant is wrapped in two callbacks (prefill, decode step) over its own module and cache, so the
// timing loop is the same for all of them. Times are medians after one warm-up run.
#include "tools/bench/bench_attention.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/runtime.h"
#include "models/attention.h"
#include "models/layers.h"
#include "ops/ops.h"
#if __has_include("models/mla.h")
#include "models/mla.h"
#define SG_BENCH_HAS_MLA 1
#endif

namespace sg::bench {

namespace {

double median_ms(const std::function<void()>& fn, int reps) {
  fn();  // warm-up: allocator cache, page faults
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// One attention variant as the benchmark sees it.
struct Variant {
  std::string name;
  int64_t n_kv_heads = 0;         // 0 for MLA
  int64_t kv_bytes_per_token = 0;  // per layer and sequence
  int64_t max_prefill = 1 << 30;  // longest T the prefill runs at
  // forward over x [1, S, dim] at start_pos, with (cache = true) or without the variant's cache
  std::function<void(const Tensor& x, int64_t start_pos, bool cache)> forward;
  std::function<void(int64_t max_seq_len)> reset_cache;  // a fresh, empty cache
};

ModelArgs bench_args(int64_t max_seq_len) {
  ModelArgs a;
  a.dim = 256;
  a.n_heads = 8;
  a.max_seq_len = max_seq_len;
  a.original_seq_len = max_seq_len;  // plain RoPE, no YaRN
  return a;
}

Variant gqa_variant(int64_t n_kv_heads, int64_t max_seq_len, Rng& rng) {
  ModelArgs a = bench_args(max_seq_len);
  a.n_kv_heads = n_kv_heads;
  auto attn = std::make_shared<Attention>(a, rng);
  auto rope = std::make_shared<RopeTable>(a, attn->head_dim);
  auto cache = std::make_shared<KVCache>();
  Variant v;
  v.name = attn->kind();
  v.n_kv_heads = n_kv_heads;
  v.kv_bytes_per_token = attn->make_cache(1, 1).bytes_per_token();
  v.forward = [attn, rope, cache](const Tensor& x, int64_t start_pos, bool use_cache) {
    attn->forward(x, start_pos, *rope, use_cache ? cache.get() : nullptr);
  };
  v.reset_cache = [attn, cache](int64_t n) { *cache = attn->make_cache(1, n); };
  return v;
}

#ifdef SG_BENCH_HAS_MLA
Variant mla_variant(int64_t max_seq_len, Rng& rng) {
  ModelArgs a = bench_args(max_seq_len);
  a.q_lora_rank = 0;
  a.kv_lora_rank = 128;
  a.qk_nope_head_dim = 32;
  a.qk_rope_head_dim = 16;
  a.v_head_dim = 32;
  auto mla = std::make_shared<MLA>(a, rng);
  auto rope = std::make_shared<RopeTable>(a);
  auto cache = std::make_shared<MLACache>();
  Variant v;
  v.name = "MLA";
  v.kv_bytes_per_token = MLACache(a, MLAMode::absorbed, 1, 1).bytes_per_token();
  v.max_prefill = 2048;
  // prefill without a cache: naive ("MHA mode"); with the cache (decoding): absorbed ("MQA mode")
  v.forward = [mla, rope, cache](const Tensor& x, int64_t start_pos, bool use_cache) {
    if (use_cache) mla->forward(x, start_pos, *rope, cache.get(), MLAMode::absorbed);
    else mla->forward(x, start_pos, *rope, nullptr, MLAMode::naive);
  };
  v.reset_cache = [a, cache](int64_t n) { *cache = MLACache(a, MLAMode::absorbed, 1, n); };
  return v;
}
#endif

}  // namespace

int bench_attention(bool json, bool quick) {
  NoGradGuard no_grad;
  std::vector<int64_t> Ts = {256, 512, 1024, 2048, 4096};
  if (quick) Ts.resize(3);
  const int64_t steps = quick ? 8 : 32, chunk = 512, dim = 256;
  const int64_t max_seq_len = Ts.back() + steps + 1;
  Rng rng(0);
  std::vector<Variant> variants = {gqa_variant(8, max_seq_len, rng), gqa_variant(2, max_seq_len, rng),
                                   gqa_variant(1, max_seq_len, rng)};
#ifdef SG_BENCH_HAS_MLA
  variants.push_back(mla_variant(max_seq_len, rng));
#endif
  Tensor x_all = Tensor::randn({1, max_seq_len, dim}, rng);

  if (!json)
    std::printf("attention layer, dim %lld, 8 query heads, batch 1, f32, %d threads (MLA: prefill naive, decode absorbed)\n"
                "%-8s %8s %6s %11s %13s %10s %12s %12s %11s\n",
                (long long)dim, num_threads(), "variant", "kv_heads", "T", "prefill ms", "prefill tok/s", "decode ms",
                "decode tok/s", "KV B/token", "KV at T");
  for (Variant& v : variants) {
    for (int64_t T : Ts) {
      // prefill: one forward over T tokens
      double prefill_ms = -1;
      if (T <= v.max_prefill) {
        Tensor x = contiguous(narrow(x_all, 1, 0, T));
        prefill_ms = median_ms([&] { v.forward(x, 0, false); }, T >= 2048 ? 3 : 5);
      }
      // decode: fill the cache to T in chunks, then time one-token steps
      v.reset_cache(max_seq_len);
      for (int64_t p = 0; p < T; p += chunk) v.forward(narrow(x_all, 1, p, std::min(chunk, T - p)), p, true);
      std::vector<double> t;
      for (int64_t s = 0; s < steps; s++) {
        Tensor xs = contiguous(narrow(x_all, 1, T + s, 1));
        auto t0 = std::chrono::steady_clock::now();
        v.forward(xs, T + s, true);
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      double decode_ms = t[t.size() / 2];
      double prefill_tps = prefill_ms > 0 ? (double)T / (prefill_ms * 1e-3) : 0.0;
      double decode_tps = 1.0 / (decode_ms * 1e-3);
      double kv_mib = (double)v.kv_bytes_per_token * (double)T / (1024.0 * 1024.0);
      if (json) {
        char pm[32] = "null", pt[32] = "null";
        if (prefill_ms > 0) {
          std::snprintf(pm, sizeof pm, "%.4f", prefill_ms);
          std::snprintf(pt, sizeof pt, "%.1f", prefill_tps);
        }
        std::printf("{\"bench\":\"attention\",\"variant\":\"%s\",\"dim\":%lld,\"n_heads\":8,\"n_kv_heads\":%lld,\"T\":%lld,"
                    "\"batch\":1,\"threads\":%d,\"prefill_ms\":%s,\"prefill_tokens_per_s\":%s,\"decode_ms\":%.4f,"
                    "\"decode_tokens_per_s\":%.1f,\"kv_bytes_per_token\":%lld}\n",
                    v.name.c_str(), (long long)dim, (long long)v.n_kv_heads, (long long)T, num_threads(),
                    pm, pt, decode_ms, decode_tps,
                    (long long)v.kv_bytes_per_token);
      } else {
        char pm[32] = "skipped", pt[32] = "-";
        if (prefill_ms > 0) {
          std::snprintf(pm, sizeof pm, "%.2f", prefill_ms);
          std::snprintf(pt, sizeof pt, "%.0f", prefill_tps);
        }
        std::printf("%-8s %8lld %6lld %11s %13s %10.3f %12.0f %12lld %8.2f MiB\n", v.name.c_str(), (long long)v.n_kv_heads,
                    (long long)T, pm, pt, decode_ms, decode_tps, (long long)v.kv_bytes_per_token, kv_mib);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace sg::bench
