// tests/ops/test_thread_determinism.cpp — the CPU kernels give the same bits on 1, 2, 3 and 4 threads.
//
// gemm_f32 is the kernel that did not: its depth split (K cut across threads, for dW = dYᵀ·X) added one
// partial product per thread, so the sums' grouping followed the thread count. Now it cuts at the K
// blocks one thread runs and adds them in the same order (ops/cpu/gemm.cpp, gemm_split_depth). Here: every
// micro-kernel this CPU has, on shapes that take the depth split (and rows / columns, alpha != 1, beta != 0,
// edge tiles, strides), bit-identical on 1..4 threads and within tolerance of the naive loop.
//
// The other threaded kernels (elementwise, softmax, cross_entropy, rms_norm, layer_norm, rope, row
// reductions, index_add, scatter_add) split only over independent rows, columns or elements; the sweep
// below runs each on sizes that put chunk boundaries at odd places (not a multiple of any SIMD width),
// so a kernel whose vector body and scalar tail rounded differently, or that summed across chunks, would
// show it. The optimizer kernels have their own thread sweep (test_optim.cpp); a whole Transformer's
// backward and a short pretraining run: tests/train/test_thread_determinism.cpp.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/rng.h"
#include "autograd/runtime.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/index.h"
#include "ops/cpu/nn.h"
#include "ops/cpu/reduce.h"
#include "ops/cpu/runtime.h"
#include "tests/ops/gemm_check.h"

using namespace sg;
using namespace sg::test::gemm;

namespace {

// Runs `run` (which returns its output's values) on 1, 2, 3 and 4 threads; every result must equal the
// one-thread result bit for bit. Returns the one-thread result.
std::vector<float> same_on_1_to_4_threads(const char* what, const std::function<std::vector<float>()>& run) {
  const int saved = num_threads();
  const bool was_naive = naive_kernels();
  set_naive_kernels(false);
  set_num_threads(1);
  const std::vector<float> one = run();
  for (int threads : {2, 3, 4}) {
    set_num_threads(threads);
    const std::vector<float> got = run();
    int64_t differ = 0;
    REQUIRE(got.size() == one.size());
    for (size_t i = 0; i < one.size(); i++) differ += std::memcmp(&got[i], &one[i], sizeof(float)) != 0;
    CHECK_MESSAGE(differ == 0, std::string(what) << ": " << differ << " of " << one.size() << " values differ between 1 and "
                                    << threads << " threads");
  }
  set_num_threads(saved);
  set_naive_kernels(was_naive);
  return one;
}

std::vector<float> uniform(int64_t n, uint64_t seed, double lo = -1, double hi = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = (float)rng.uniform(lo, hi);
  return v;
}

}  // namespace

TEST_CASE("gemm_f32: the depth split (and every other) gives the same bits on 1..4 threads, as the naive loop") {
  // K long, M and N small: dW = dYᵀ·X, which takes the depth split (more kc blocks than threads).
  // Edge tiles in M and N, beta != 0 (applied once, by block 0), padded strides; then alpha != 1 (never
  // split along K), and shapes that split along rows and columns.
  const std::vector<GemmShape> shapes = {
      {48, 48, 2100, true, false},
      {37, 45, 2600, true, false, 3, 1, 5, 1.0f, 0.5f},
      {64, 96, 1537, false, true, 0, 0, 0, 1.0f, 1.0f},
      {20, 130, 3000, true, true, 2, 0, 1, 1.0f, -0.25f},
      {48, 48, 2100, true, false, 0, 0, 0, 0.75f, 0.0f},
      {301, 64, 200, false, true},
      {40, 517, 300, true, false, 0, 0, 0, 1.5f, 0.5f},
  };
  for (GemmKernel kernel : {GemmKernel::scalar, GemmKernel::avx2, GemmKernel::avx512}) {
    if (!cpu::gemm_kernel_available(kernel)) {
      MESSAGE("micro-kernel " << cpu::gemm_kernel_name(kernel) << " not on this CPU: not tried");
      continue;
    }
    uint64_t seed = 21;
    for (const GemmShape& s : shapes) {
      INFO("kernel ", cpu::gemm_kernel_name(kernel), " ", describe(s));
      GemmData d(s, seed++);
      const std::vector<float> one =
          same_on_1_to_4_threads("gemm_f32", [&] { return run_gemm(s, d, false, kernel); });
      check_close(s, d, one, run_gemm(s, d, true, kernel), tolerance(s));
    }
  }
}

TEST_CASE("elementwise kernels: the same bits on 1..4 threads, chunk boundaries at odd places") {
  const int64_t n = 4 * 32768 + 77;  // 4 chunks of kGrain and a bit: boundaries at n·t/threads
  const std::vector<float> x = uniform(n, 1, -4, 4), dy = uniform(n, 2), y_pos = uniform(n, 3, 0.1, 3);
  for (cpu::UnaryOp op : {cpu::UnaryOp::neg, cpu::UnaryOp::exp, cpu::UnaryOp::log, cpu::UnaryOp::sqrt,
                          cpu::UnaryOp::rsqrt, cpu::UnaryOp::abs, cpu::UnaryOp::relu, cpu::UnaryOp::sigmoid,
                          cpu::UnaryOp::silu, cpu::UnaryOp::gelu, cpu::UnaryOp::tanh, cpu::UnaryOp::softplus,
                          cpu::UnaryOp::logsigmoid, cpu::UnaryOp::square}) {
    INFO("op ", cpu::unary_op_name(op));
    const bool positive = op == cpu::UnaryOp::log || op == cpu::UnaryOp::sqrt || op == cpu::UnaryOp::rsqrt;
    const std::vector<float>& in = positive ? y_pos : x;
    const std::vector<float> y = same_on_1_to_4_threads("unary_forward", [&] {
      std::vector<float> out(n);
      cpu::unary_forward(op, in.data(), out.data(), n);
      return out;
    });
    same_on_1_to_4_threads("unary_backward", [&] {
      std::vector<float> dx(n);
      cpu::unary_backward(op, in.data(), y.data(), dy.data(), dx.data(), n);
      return dx;
    });
  }
  for (cpu::BinaryOp op : {cpu::BinaryOp::add, cpu::BinaryOp::sub, cpu::BinaryOp::mul, cpu::BinaryOp::div}) {
    INFO("op ", cpu::binary_op_name(op));
    same_on_1_to_4_threads("binary_forward (flat)", [&] {  // [n] op [n]
      std::vector<float> out(n);
      cpu::binary_forward(op, {n}, x.data(), {1}, y_pos.data(), {1}, out.data());
      return out;
    });
    same_on_1_to_4_threads("binary_forward (broadcast)", [&] {  // [n/61, 61] op [61]
      const int64_t rows = n / 61;
      std::vector<float> out(rows * 61);
      cpu::binary_forward(op, {rows, 61}, x.data(), {61, 1}, y_pos.data(), {0, 1}, out.data());
      return out;
    });
  }
  same_on_1_to_4_threads("affine_forward", [&] {
    std::vector<float> out(n);
    cpu::affine_forward(x.data(), 1.7f, -0.3f, out.data(), n);
    return out;
  });
}

TEST_CASE("nn kernels (softmax, cross_entropy, norms, rope) and row reductions: the same bits on 1..4 threads") {
  const int64_t rows = 1031, cols = 67;  // rows split at odd places, rows not a multiple of a SIMD width
  const std::vector<float> x = uniform(rows * cols, 5, -3, 3), dy = uniform(rows * cols, 6), w = uniform(cols, 7, 0.5, 1.5),
                           bias = uniform(cols, 8);
  auto cat = [](std::vector<float> a, const std::vector<float>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const std::vector<float> y = same_on_1_to_4_threads("softmax_forward", [&] {
    std::vector<float> out(rows * cols);
    cpu::softmax_forward(x.data(), out.data(), rows, cols);
    return out;
  });
  same_on_1_to_4_threads("softmax_backward", [&] {
    std::vector<float> dx(rows * cols);
    cpu::softmax_backward(y.data(), dy.data(), dx.data(), rows, cols);
    return dx;
  });
  const std::vector<float> ly = same_on_1_to_4_threads("log_softmax_forward", [&] {
    std::vector<float> out(rows * cols);
    cpu::log_softmax_forward(x.data(), out.data(), rows, cols);
    return out;
  });
  same_on_1_to_4_threads("log_softmax_backward", [&] {
    std::vector<float> dx(rows * cols);
    cpu::log_softmax_backward(ly.data(), dy.data(), dx.data(), rows, cols);
    return dx;
  });

  std::vector<int64_t> targets(rows);
  for (int64_t r = 0; r < rows; r++) targets[r] = r % 7 == 3 ? -100 : (r * 13) % cols;
  const std::vector<float> lse_loss = same_on_1_to_4_threads("cross_entropy_forward", [&] {
    std::vector<float> lse(rows), loss(rows);
    cpu::cross_entropy_forward(x.data(), targets.data(), lse.data(), loss.data(), rows, cols, -100);
    return cat(lse, loss);
  });
  same_on_1_to_4_threads("cross_entropy_backward", [&] {
    std::vector<float> dlogits(rows * cols);
    cpu::cross_entropy_backward(x.data(), targets.data(), lse_loss.data(), 0.01f, dlogits.data(), rows, cols, -100);
    return dlogits;
  });

  std::vector<float> rstd(rows);
  same_on_1_to_4_threads("rms_norm_forward", [&] {
    std::vector<float> out(rows * cols);
    cpu::rms_norm_forward(x.data(), w.data(), out.data(), rstd.data(), rows, cols, 1e-6);
    return cat(out, rstd);
  });
  same_on_1_to_4_threads("rms_norm_backward", [&] {
    std::vector<float> dx(rows * cols), dw(cols);
    cpu::rms_norm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), rows, cols);
    return cat(dx, dw);
  });
  std::vector<float> mean(rows);
  same_on_1_to_4_threads("layer_norm_forward", [&] {
    std::vector<float> out(rows * cols);
    cpu::layer_norm_forward(x.data(), w.data(), bias.data(), out.data(), mean.data(), rstd.data(), rows, cols, 1e-5);
    return cat(cat(out, mean), rstd);
  });
  same_on_1_to_4_threads("layer_norm_backward", [&] {
    std::vector<float> dx(rows * cols), dw(cols), db(cols);
    cpu::layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(), db.data(),
                             rows, cols);
    return cat(cat(dx, dw), db);
  });

  for (cpu::ReduceOp op : {cpu::ReduceOp::sum, cpu::ReduceOp::max, cpu::ReduceOp::min})
    same_on_1_to_4_threads("reduce_rows", [&] {
      std::vector<float> out(rows);
      cpu::reduce_rows(op, x.data(), rows, cols, out.data());
      return out;
    });
}

TEST_CASE("index_add and scatter_add: repeated indices, the same bits on 1..4 threads") {
  // out [outer=3, n=50, inner=301] += src [3, k=4000, 301] at rows index[j] (each row hit ~80 times)
  const int64_t outer = 3, n = 50, k = 4000, inner = 301;
  const std::vector<float> src = uniform(outer * k * inner, 9), base = uniform(outer * n * inner, 10);
  std::vector<int64_t> index(k);
  for (int64_t j = 0; j < k; j++) index[j] = (j * 37 + j / 3) % n;
  same_on_1_to_4_threads("index_add_forward", [&] {
    std::vector<float> out = base;
    cpu::index_add_forward(out.data(), index.data(), src.data(), outer, n, k, inner);
    return out;
  });
  // scatter_add along dim 1 of out [3, 50, 301] from src/index [3, 4000, 301]
  std::vector<int64_t> index3(outer * k * inner);
  for (size_t p = 0; p < index3.size(); p++) index3[p] = (int64_t)((p * 2654435761u) % n);
  same_on_1_to_4_threads("scatter_add_forward", [&] {
    std::vector<float> out = base;
    cpu::scatter_add_forward(out.data(), {outer, n, inner}, index3.data(), {outer, k, inner}, 1, src.data());
    return out;
  });
}
