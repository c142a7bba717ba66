// tests/cuda/test_reduce_emu.cpp — the CUDA row reductions and strided copy (cuda/kernels/reduce.cuh), run in the
// CPU emulation in both lane orders, against the CPU kernels (ops/cpu/reduce.h, ops/cpu/copy.h) on random inputs.
//
// max, min, argmax, argmin and the copy pick or move values: the same bits as the CPU, ties (integer-valued rows,
// −0 vs +0) and NaN included. The sum adds in f32 in the block's order where the CPU adds in double: see
// kSumTolerance. Every kernel also gives the same bits in the two lane orders (no race, a fixed order).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/reduce.h"
#include "ops/cpu/copy.h"
#include "ops/cpu/reduce.h"
#include "tests/test_util.h"
#include "tests/cuda/emu_test_util.h"

using sg::emu::LaneOrder;

using sg::test::emu::random_values;
using sg::test::emu::same_bits;

namespace {

// Rows of `cols` for each code path: one partial warp (37 -> a 64-thread block), exactly one warp (32), a full
// 256-thread block (256), one past it (257), and rows longer than the block (1000: each thread adds 3 or 4).
struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{3, 1}, {6, 37}, {2, 32}, {2, 256}, {3, 257}, {4, 1000}};

// The f32 sum of n terms in any order errs by at most (additions on a path to the root) · 2^-24 · Σ|x|. Here a
// path is ceil(cols / 256) ≤ 4 per-thread adds plus 5 + 5 butterfly levels; the CPU's double sum adds one
// rounding of the result. (4 + 10 + 1) · 2^-24 < 1e-6.
constexpr double kSumTolerance = 1e-6;

}  // namespace

TEST_CASE("cuda emu reduce: reduce_rows sum/max/min equal the CPU kernel, ragged rows, both lane orders") {
  for (const Shape& sh : kShapes) {
    CAPTURE(sh.rows);
    CAPTURE(sh.cols);
    const int64_t n = sh.rows * sh.cols;
    const std::vector<float> x = random_values(n, 100 + n, -3.0f, 3.0f);
    for (sg::ReduceOp op : {sg::ReduceOp::sum, sg::ReduceOp::max, sg::ReduceOp::min}) {
      CAPTURE((int)op);
      std::vector<float> want(sh.rows);
      sg::cpu::reduce_rows(op, x.data(), sh.rows, sh.cols, want.data());
      std::vector<float> got[2];
      for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
        sg::emu::LaneOrderScope scope(order);
        std::vector<float>& out = got[(int)order];
        out.assign(sh.rows, NAN);
        sg::cuda_emu::reduce_rows({op, sh.rows, sh.cols, x.data(), out.data()});
      }
      CHECK(same_bits(got[0], got[1]));
      if (op != sg::ReduceOp::sum) {
        CHECK(same_bits(got[0], want));
        continue;
      }
      for (int64_t r = 0; r < sh.rows; r++) {
        double abs_sum = 0;
        for (int64_t c = 0; c < sh.cols; c++) abs_sum += std::abs(x[r * sh.cols + c]);
        CHECK(std::abs((double)got[0][r] - want[r]) <= kSumTolerance * abs_sum);
      }
    }
  }
}

TEST_CASE("cuda emu reduce: argmax/argmin pick the CPU's index: first of ties, signed zeros, NaN") {
  // Integer values in [-3, 3] over 300 columns: every row has its extreme many times over, in several warps.
  const int64_t rows = 5, cols = 300;
  std::vector<float> x = random_values(rows * cols, 7, -3.49f, 3.49f);
  for (float& v : x) v = std::round(v);
  // row 1: all zeros of both signs (−0 == +0: the first one wins, and reduce_rows returns its sign)
  for (int64_t c = 0; c < cols; c++) x[1 * cols + c] = (c * 7919 % 3 == 0) ? -0.0f : 0.0f;
  x[1 * cols + 0] = -0.0f;
  x[1 * cols + 1] = 0.0f;
  // row 2: NaNs in the middle (skipped); row 3: NaN at column 0 (the CPU's scan never leaves it)
  x[2 * cols + 17] = NAN;
  x[2 * cols + 299] = NAN;
  x[3 * cols + 0] = NAN;
  // row 4: the extreme only in the last, partial warp (column 299 = lane 11 of warp 1 in its second pass)
  for (int64_t c = 0; c < cols; c++) x[4 * cols + c] = 0.5f;
  x[4 * cols + 299] = 9.0f;
  x[4 * cols + 298] = -9.0f;
  for (sg::ReduceOp op : {sg::ReduceOp::max, sg::ReduceOp::min}) {
    CAPTURE((int)op);
    std::vector<int64_t> want_idx(rows);
    std::vector<float> want_val(rows);
    sg::cpu::arg_reduce_rows(op, x.data(), rows, cols, want_idx.data());
    sg::cpu::reduce_rows(op, x.data(), rows, cols, want_val.data());
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<int64_t> idx(rows, -1);
      std::vector<float> val(rows, 1.0f);
      sg::cuda_emu::arg_reduce_rows({op, rows, cols, x.data(), idx.data()});
      sg::cuda_emu::reduce_rows({op, rows, cols, x.data(), val.data()});
      CHECK(idx == want_idx);
      CHECK(same_bits(val, want_val));   // NaN on row 3, −0 on row 1: compared as bits
    }
  }
  // and the cases by hand: the first −0 of row 1, the NaN rows, the lone extremes of row 4
  std::vector<int64_t> idx(rows);
  sg::cuda_emu::arg_reduce_rows({sg::ReduceOp::max, rows, cols, x.data(), idx.data()});
  CHECK(idx[1] == 0);
  CHECK(idx[3] == 0);
  CHECK(idx[4] == 299);
  sg::cuda_emu::arg_reduce_rows({sg::ReduceOp::min, rows, cols, x.data(), idx.data()});
  CHECK(idx[4] == 298);
  // ragged random rows (no ties) across every shape
  for (const Shape& sh : kShapes) {
    const std::vector<float> y = random_values(sh.rows * sh.cols, 31 + sh.cols, -1.0f, 1.0f);
    for (sg::ReduceOp op : {sg::ReduceOp::max, sg::ReduceOp::min}) {
      std::vector<int64_t> want(sh.rows), got(sh.rows, -1);
      sg::cpu::arg_reduce_rows(op, y.data(), sh.rows, sh.cols, want.data());
      sg::emu::LaneOrderScope scope(LaneOrder::reverse);
      sg::cuda_emu::arg_reduce_rows({op, sh.rows, sh.cols, y.data(), got.data()});
      CHECK(got == want);
    }
  }
}

TEST_CASE("cuda emu reduce: strided_copy equals the CPU's strided copy for ranks 0 to 8") {
  struct Case {
    std::vector<int64_t> shape, src_strides;
    int64_t src_elems;
  };
  const std::vector<Case> cases = {
      {{}, {}, 1},                                         // a scalar
      {{300}, {2}, 600},                                   // every other element, more than one block
      {{3, 4, 5}, {1, 3, 12}, 60},                         // a transposed (5, 4, 3) buffer
      {{2, 3, 7, 5}, {35, 0, 5, 1}, 70},                   // a broadcast dim (stride 0)
      {{2, 1, 3, 1, 2, 2, 1, 3}, {36, 7, 12, 5, 6, 1, 9, 2}, 72},   // rank 8, permuted strides, size-1 dims
  };
  for (const Case& cs : cases) {
    const int nd = (int)cs.shape.size();
    CAPTURE(nd);
    int64_t n = 1;
    for (int64_t d : cs.shape) n *= d;
    const std::vector<float> src = random_values(cs.src_elems, 50 + nd, -1.0f, 1.0f);
    std::vector<int64_t> dst_strides(nd);
    for (int d = nd - 1, s = 1; d >= 0; s *= (int)cs.shape[d], d--) dst_strides[d] = s;
    std::vector<float> want(n);
    sg::cpu::strided_copy(cs.shape, src.data(), cs.src_strides, want.data(), dst_strides);
    for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
      sg::emu::LaneOrderScope scope(order);
      sg::StridedCopyArgs<float> a{};
      a.ndim = nd;
      for (int d = 0; d < nd; d++) a.shape[d] = cs.shape[d], a.src_strides[d] = cs.src_strides[d];
      a.src = src.data();
      std::vector<float> got(n, NAN);
      a.dst = got.data();
      sg::cuda_emu::strided_copy(a);
      CHECK(same_bits(got, want));
    }
  }
}

TEST_CASE("cuda emu reduce: bad arguments name the kernel") {
  std::vector<float> x(8, 1.0f), out(8);
  std::vector<int64_t> idx(8);
  CHECK(sg::test::error_of([&] { sg::cuda_emu::reduce_rows({sg::ReduceOp::sum, -1, 4, x.data(), out.data()}); })
            .find("[cuda] reduce_rows:") == 0);
  CHECK(sg::test::error_of([&] { sg::cuda_emu::reduce_rows({sg::ReduceOp::max, 2, 0, x.data(), out.data()}); })
            .find("[cuda] reduce_rows: max/min of an empty row") == 0);
  CHECK(sg::test::error_of([&] { sg::cuda_emu::arg_reduce_rows({sg::ReduceOp::sum, 2, 4, x.data(), idx.data()}); })
            .find("[cuda] arg_reduce_rows: op must be max or min") == 0);
  sg::StridedCopyArgs<float> a{};
  a.ndim = sg::kMaxKernelDims + 1;
  CHECK(sg::test::error_of([&] { sg::cuda_emu::strided_copy(a); }).find("[cuda] strided_copy: ndim 9") == 0);
  // a sum over no columns is 0, as on the CPU
  out[0] = out[1] = NAN;
  sg::cuda_emu::reduce_rows({sg::ReduceOp::sum, 2, 0, x.data(), out.data()});
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == 0.0f);
}
