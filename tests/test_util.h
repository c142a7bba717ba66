// tests/test_util.h — small helpers shared by the test files (doctest must be included first).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/tensor.h"
#include "models/config.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

namespace sg::test {

// The official tiny model and its outputs (tests/fixtures/README.md), with a trailing '/'.
inline const std::string kFixtures = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite/";

// max |a - b| over two tensors of the same shape (any dtypes, any layouts).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE_MESSAGE(a.shape() == b.shape(), a.describe() << " vs " << b.describe());
  std::vector<double> x = a.to_f64_vector(), y = b.to_f64_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// The message of the exception `f` throws ("" if it does not throw).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Whether `part` occurs in `s` (error-message checks).
inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The Sylvester Hadamard matrix H_n (unscaled, n×n row-major, n a power of two) by its recursion
// H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]]: the independent reference of the fast transform.
inline std::vector<double> sylvester_hadamard(int64_t n) {
  std::vector<double> h{1.0};
  for (int64_t m = 1; m < n; m *= 2) {
    std::vector<double> g(4 * m * m);
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < m; j++) {
        const double v = h[i * m + j];
        g[i * 2 * m + j] = v;
        g[i * 2 * m + j + m] = v;
        g[(i + m) * 2 * m + j] = v;
        g[(i + m) * 2 * m + j + m] = -v;
      }
    h = g;
  }
  return h;
}

// ---- skipping a test that cannot run here ----------------------------------------------------------
// A test case that needs what this machine lacks (AVX-512, gdb, ...) calls SEEKGRAD_SKIP("why") and
// returns; tests/test_main.cpp then exits with kSkipReturnCode, which CTest reports as "Skipped"
// (SKIP_RETURN_CODE in CMakeLists.txt) instead of "Passed". Put such a case in its own source file:
// the whole file's CTest entry reports the skip.

inline constexpr int kSkipReturnCode = 77;

// "test case name: reason" for every SEEKGRAD_SKIP so far, in order.
inline std::vector<std::string>& skipped_cases() {
  static std::vector<std::string> cases;
  return cases;
}

inline void declare_skip(const std::string& reason) {
  const doctest::ContextOptions* ctx = doctest::getContextOptions();
  const std::string name = ctx && ctx->currentTest ? ctx->currentTest->m_name : "?";
  skipped_cases().push_back(name + ": " + reason);
}

// True when SEEKGRAD_TEST_PRETEND_NO (a list such as "avx2,avx512") names `feature`: the tests then act as
// on a machine without it, which is how the skip path is tried on a machine that has everything.
inline bool pretend_missing(const std::string& feature) {
  const char* env = std::getenv("SEEKGRAD_TEST_PRETEND_NO");
  if (!env) return false;
  std::stringstream list(env);
  for (std::string item; std::getline(list, item, ',');)
    if (item == feature) return true;
  return false;
}

// The post-training tests' model (SFT, GRPO): dim 16, 2 layers (1 dense + 1 DeepSeekMoE with 4 routed + 1 shared
// experts, sigmoid gate), MLA without q-LoRA, no MTP.
inline ModelArgs tiny_post_training_args(int64_t vocab, int64_t max_seq_len, int64_t max_batch_size) {
  ModelArgs a;
  a.vocab_size = vocab;
  a.dim = 16;
  a.n_layers = 2;
  a.n_dense_layers = 1;
  a.inter_dim = 32;
  a.n_heads = 2;
  a.q_lora_rank = 0;
  a.kv_lora_rank = 8;
  a.qk_nope_head_dim = 8;
  a.qk_rope_head_dim = 4;
  a.v_head_dim = 8;
  a.n_routed_experts = 4;
  a.n_shared_experts = 1;
  a.n_activated_experts = 2;
  a.n_expert_groups = 1;
  a.n_limited_groups = 1;
  a.moe_inter_dim = 16;
  a.score_func = "sigmoid";
  a.max_batch_size = max_batch_size;
  a.max_seq_len = max_seq_len;
  a.original_seq_len = max_seq_len;
  return a;
}

}  // namespace sg::test

// Ends the current test case as skipped, printing `reason` (a string or a `<<` chain). Only in the test
// case's own body (it returns from the enclosing function).
#define SEEKGRAD_SKIP(reason)                                    \
  do {                                                           \
    std::ostringstream seekgrad_skip_reason_;                    \
    seekgrad_skip_reason_ << reason;                             \
    MESSAGE("SKIPPED: " << seekgrad_skip_reason_.str());         \
    ::sg::test::declare_skip(seekgrad_skip_reason_.str());       \
    return;                                                      \
  } while (0)
