// ops/linalg.cpp — matmul and linear, forward and backward side by side. See linalg.h.
//
//   Y = A·B      dA = dY·Bᵀ  (summed over broadcast batch dims),   dB = Aᵀ·dY
//   y = x·Wᵀ     dx = dy·W,                                        dW = dyᵀ·x  (one GEMM over all tokens)
#include "ops/linalg.h"

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "ops/cpu/gemm.h"
#include "ops/dispatch.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace sg {

// How one matrix (the last two dims of t) is handed to GEMM without copying: row-major with a
// leading dimension, or column-major (= transposed row-major). Anything else is copied first.
struct MatrixOperand {
  Tensor t;          // possibly a contiguous copy of the input
  bool trans = false;
  int64_t ld = 0;
};
static MatrixOperand as_gemm_operand(const Tensor& x) {
  int64_t n = x.dim();
  int64_t rows = x.shape()[n - 2], cols = x.shape()[n - 1];
  int64_t rs = x.strides()[n - 2], cs = x.strides()[n - 1];
  if (cs == 1 && (rs >= cols || rows == 1)) return {x, false, std::max<int64_t>(rs, cols)};
  if (rs == 1 && (cs >= rows || cols == 1)) return {x, true, std::max<int64_t>(cs, rows)};
  Tensor c = contiguous(x.detach());
  return {c, false, cols};
}

// True when the matrices of x (its last two dims) are stored column-major, i.e. x is a transposed view of
// row-major storage — the case as_gemm_operand reads with trans = true.
static bool stored_transposed(const Tensor& x) {
  int64_t n = x.dim();
  int64_t rows = x.shape()[n - 2], cols = x.shape()[n - 1];
  int64_t rs = x.strides()[n - 2], cs = x.strides()[n - 1];
  if (cs == 1 && (rs >= cols || rows == 1)) return false;
  return rs == 1 && cols > 1 && cs >= rows;
}

// C[batch] = A[batch] · B[batch] for the broadcast batch dims of a, b (both already >= 2-D).
static Tensor batched_gemm(const Tensor& a, const Tensor& b) {
  int64_t M = a.shape()[a.dim() - 2], K = a.shape()[a.dim() - 1], N = b.shape()[b.dim() - 1];
  Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Tensor pa = Tensor::empty(batch_a, a.dtype()), pb = Tensor::empty(batch_b, b.dtype());
  Shape batch = broadcast_shapes("matmul", pa, pb);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Shape full_a = batch, full_b = batch;
  full_a.insert(full_a.end(), {M, K});
  full_b.insert(full_b.end(), {K, N});
  Tensor ea = expand(a.detach(), full_a), eb = expand(b.detach(), full_b);
  MatrixOperand A = as_gemm_operand(ea), B = as_gemm_operand(eb);
  Tensor c = Tensor::empty(out_shape, a.dtype());
  int64_t n_batch = shape_numel(batch), nb = (int64_t)batch.size();
  auto batch_offset = [&](const Tensor& t, int64_t i) {
    int64_t off = 0;
    for (int64_t d = nb - 1; d >= 0; d--) {
      off += (i % batch[d]) * t.strides()[d];
      i /= batch[d];
    }
    return off;
  };
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    const T* a0 = static_cast<const T*>(A.t.raw_data());
    const T* b0 = static_cast<const T*>(B.t.raw_data());
    T* c0 = c.data<T>();
    auto one = [&](int64_t i) {
      const T* pa_i = a0 + batch_offset(A.t, i);
      const T* pb_i = b0 + batch_offset(B.t, i);
      T* pc_i = c0 + i * M * N;
      if constexpr (std::is_same_v<T, float>)
        cpu::gemm_f32(A.trans, B.trans, M, N, K, 1.0f, pa_i, A.ld, pb_i, B.ld, 0.0f, pc_i, N);
      else
        cpu::gemm_f64(A.trans, B.trans, M, N, K, 1.0, pa_i, A.ld, pb_i, B.ld, 0.0, pc_i, N);
    };
    // Many small matrices (attention heads): one thread per matrix. Few big ones: GEMM threads inside.
    if (n_batch >= 2 * num_threads() && M * N * K < (int64_t)1 << 22)
      parallel_for(n_batch, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; i++) one(i);
      });
    else
      for (int64_t i = 0; i < n_batch; i++) one(i);
  });
  return c;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined("matmul", a_in, "a");
  check_defined("matmul", b_in, "b");
  check_floating("matmul", a_in);
  check_same_dtype("matmul", a_in, b_in);
  check_cpu("matmul", a_in);
  check_cpu("matmul", b_in);
  if (a_in.dim() == 0 || b_in.dim() == 0) op_error("matmul", "needs at least 1-D inputs, got " + a_in.describe() + " and " + b_in.describe());
  if (a_in.dim() == 1 && b_in.dim() == 1) return squeeze(matmul(unsqueeze(a_in, 0), b_in), 0);  // dot: [1] -> ()
  if (a_in.dim() == 1) return squeeze(matmul(unsqueeze(a_in, 0), b_in), -2);
  if (b_in.dim() == 1) return squeeze(matmul(a_in, unsqueeze(b_in, 1)), -1);
  if (a_in.size(-1) != b_in.size(-2))
    op_error("matmul", a_in.describe() + " and " + b_in.describe() + ": inner dims " + std::to_string(a_in.size(-1)) +
                           " and " + std::to_string(b_in.size(-2)) + " differ");
  Tensor y = batched_gemm(a_in, b_in);
  if (needs_grad({a_in, b_in})) {
    Tensor as = a_in.detach(), bs = b_in.detach();
    bool ga = a_in.requires_grad(), gb = b_in.requires_grad();
    // Each gradient is written in its input's memory layout. An input stored transposed (linear reads its
    // weight [out, in] as the view Wᵀ) gets (dYᵀ A)ᵀ instead of Aᵀ dY — the same GEMM, its result
    // written [N, K] — so the weight's gradient arrives contiguous in the weight's own layout rather
    // than as a transposed view that would be copied element by element on its way to .grad (with
    // backward() keeping each gradient's layout, this removed ~40 ms of copies per bench-small training
    // step on one core).
    record("matmul", y, {a_in, b_in}, [as, bs, ga, gb](const Tensor& dy) {
      Tensor da, db;
      if (ga)
        da = sum_to(stored_transposed(as) ? transpose(matmul(bs, transpose(dy, -1, -2)), -1, -2)
                                          : matmul(dy, transpose(bs, -1, -2)),
                    as.shape());
      if (gb)
        db = sum_to(stored_transposed(bs) ? transpose(matmul(transpose(dy, -1, -2), as), -1, -2)
                                          : matmul(transpose(as, -1, -2), dy),
                    bs.shape());
      return std::vector<Tensor>{da, db};
    });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight) {
  check_defined("linear", x, "x");
  check_defined("linear", weight, "weight");
  if (weight.dim() != 2) op_error("linear", "weight " + weight.describe() + " must be 2-D [out, in]");
  if (x.dim() < 1 || x.size(-1) != weight.size(1))
    op_error("linear", "x " + x.describe() + " has last dim " + (x.dim() ? std::to_string(x.size(-1)) : "-") +
                           " but weight " + weight.describe() + " expects in = " + std::to_string(weight.size(1)));
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  // Flatten the tokens so dW = dyᵀ·x is one GEMM over all of them (matmul's backward does this).
  Tensor x2 = reshape(x, {-1, weight.size(1)});
  return reshape(matmul(x2, transpose(weight, 0, 1)), out_shape);
}

}  // namespace sg
