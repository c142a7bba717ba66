// tools/bench/bench_rollout.cpp — see bench_rollout.h.
#include "tools/bench/bench_rollout.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/runtime.h"
#include "models/generate.h"
#include "models/transformer.h"
#include "train/config_yaml.h"

namespace sg::bench {

namespace {

double seconds_of(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int bench_rollout(const std::string& config_path, bool json) {
  const PretrainConfig cfg = load_pretrain_config(config_path);
  const ModelArgs& args = cfg.model;
  const int64_t G = 8, P = 40, new_tokens = 64;
  const int reps = 3;
  Rng rng(cfg.train.seed);
  Transformer model(args, rng);  // random init
  std::vector<int64_t> prompt(P);
  for (int64_t& t : prompt) t = (int64_t)rng.randint((uint64_t)args.vocab_size);
  std::vector<std::vector<int64_t>> prompts(G, prompt);
  std::vector<uint64_t> seeds(G);
  for (int64_t r = 0; r < G; r++) seeds[r] = (uint64_t)r;
  SamplingConfig c;
  c.temperature = 1.0;

  generate(model, prompt, 4, c);  // warm-up: allocator, page faults
  std::vector<std::vector<int64_t>> one, many;
  std::vector<double> t_one, t_many;
  BatchGenerateStats st;
  for (int rep = 0; rep < reps; rep++) {
    t_one.push_back(seconds_of([&] {
      one.clear();
      for (int64_t r = 0; r < G; r++) {
        SamplingConfig cr = c;
        cr.seed = seeds[r];
        one.push_back(generate(model, prompt, new_tokens, cr));
      }
    }));
    t_many.push_back(seconds_of([&] { many = generate_batch(model, prompts, new_tokens, c, seeds, -1, &st); }));
  }
  const bool identical = one == many;
  const double s_one = median(t_one), s_many = median(t_many);
  const int64_t total = G * new_tokens;
  struct Row {
    const char* mode;
    int64_t forwards;
    double seconds;
  };
  const Row rows[] = {{"row_by_row", G * new_tokens, s_one}, {"batched", st.forwards, s_many}};
  if (!json)
    std::printf("rollout: G = %lld rows x (%lld-token prompt + %lld new tokens), temperature 1, model shape of %s "
                "(dim %lld, %lld layers, vocab %lld), RANDOM init (the speed does not depend on the weights), %d threads, "
                "median of %d runs\n%-11s %5s %9s %11s %10s %10s %9s\n",
                (long long)G, (long long)P, (long long)new_tokens, config_path.c_str(), (long long)args.dim,
                (long long)args.n_layers, (long long)args.vocab_size, num_threads(), reps, "mode", "rows", "forwards",
                "new tokens", "seconds", "tokens/s", "speed-up");
  for (const Row& r : rows) {
    if (json)
      std::printf("{\"bench\":\"rollout\",\"mode\":\"%s\",\"config\":\"%s\",\"init\":\"random\",\"rows\":%lld,"
                  "\"prompt_tokens\":%lld,\"new_tokens_per_row\":%lld,\"temperature\":1.0,\"threads\":%d,\"forwards\":%lld,"
                  "\"seconds\":%.6f,\"tokens_per_s\":%.1f,\"speedup\":%.3f,\"identical\":%s}\n",
                  r.mode, config_path.c_str(), (long long)G, (long long)P, (long long)new_tokens, num_threads(),
                  (long long)r.forwards, r.seconds, (double)total / r.seconds, s_one / r.seconds, identical ? "true" : "false");
    else
      std::printf("%-11s %5lld %9lld %11lld %10.3f %10.1f %8.2fx\n", r.mode, (long long)G, (long long)r.forwards,
                  (long long)total, r.seconds, (double)total / r.seconds, s_one / r.seconds);
  }
  if (!json) std::printf("tokens identical (batched vs row by row): %s\n", identical ? "yes" : "NO");
  return identical ? 0 : 1;
}

}  // namespace sg::bench
