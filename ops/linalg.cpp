// ops/linalg.cpp — matmul and linear, forward and backward side by side. See linalg.h.
//
//   Y = A·B      dA = dY·Bᵀ  (summed over broadcast batch dims),   dB = Aᵀ·dY
//   y = x·Wᵀ     dx = dy·W,                                        dW = dyᵀ·x  (one GEMM over all tokens)
#include "ops/linalg.h"

#include <type_traits>

#include "autograd/node.h"
#include "autograd/runtime.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
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

// The kernel arguments of C = op(A)·op(B) for one matrix (batch 1), in the GEMM args type of T.
template <class T> using GemmArgsOf = std::conditional_t<std::is_same_v<T, float>, GemmArgs, kernels::GemmArgsF64>;
template <class T>
static GemmArgsOf<T> gemm_args(const MatrixOperand& A, const MatrixOperand& B, int64_t M, int64_t N, int64_t K, const T* a,
                               const T* b, T* c) {
  GemmArgsOf<T> g{};
  g.trans_a = A.trans ? 1 : 0;
  g.trans_b = B.trans ? 1 : 0;
  g.M = M, g.N = N, g.K = K;
  g.alpha = 1;
  g.A = a, g.lda = A.ld;
  g.B = b, g.ldb = B.ld;
  g.beta = 0;
  g.C = c, g.ldc = N;
  g.batch = 1;
  return g;
}

// C[batch] = A[batch] · B[batch] for the broadcast batch dims of a, b (both already >= 2-D).
//   CPU: one GEMM call per matrix — many small matrices (attention heads) one per thread, few big ones with the
//        GEMM's threads inside, as always.
//   a device: as few batched launches as the strides allow. The batch dims are merged from the innermost out while
//        A, B and C each step through them with one stride (a broadcast dim has stride 0 on its operand); each
//        index of the dims left outside that run is one launch of `run` matrices.
static Tensor batched_gemm(const Tensor& a, const Tensor& b) {
  check_same_device("matmul", a, b);
  const Device dev = a.device();
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
  Tensor c = Tensor::empty(out_shape, a.dtype(), dev);
  int64_t n_batch = shape_numel(batch), nb = (int64_t)batch.size();
  // element offset of matrix i (row-major over the batch dims [0, upto)) of t
  auto batch_offset = [&](const Tensor& t, int64_t i, int64_t upto) {
    int64_t off = 0;
    for (int64_t d = upto - 1; d >= 0; d--) {
      off += (i % batch[d]) * t.strides()[d];
      i /= batch[d];
    }
    return off;
  };
  dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    const T* a0 = static_cast<const T*>(A.t.raw_device_data());
    const T* b0 = static_cast<const T*>(B.t.raw_device_data());
    T* c0 = c.device_data<T>();
    if (dev == Device::CPU) {
      auto one = [&](int64_t i) {
        kernels::gemm("matmul", dev, gemm_args<T>(A, B, M, N, K, a0 + batch_offset(A.t, i, nb), b0 + batch_offset(B.t, i, nb),
                                                  c0 + i * M * N));
      };
      // Many small matrices (attention heads): one thread per matrix. Few big ones: GEMM threads inside.
      if (n_batch >= 2 * num_threads() && M * N * K < (int64_t)1 << 22)
        parallel_for(n_batch, 1, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; i++) one(i);
        });
      else
        for (int64_t i = 0; i < n_batch; i++) one(i);
      return;
    }
    // The run of innermost batch dims [first, nb) with one stride per operand (size-1 dims step nowhere).
    int64_t first = nb, run = 1, sa = 0, sb = 0;
    bool strided = false;
    for (int64_t d = nb - 1; d >= 0; d--) {
      if (batch[d] == 1) {
        first = d;
        continue;
      }
      const int64_t ta = A.t.strides()[d], tb = B.t.strides()[d];
      if (!strided) {
        sa = ta, sb = tb, strided = true;
      } else if (ta != sa * run || tb != sb * run) {
        break;
      }
      run *= batch[d];
      first = d;
    }
    const int64_t outer = n_batch / std::max<int64_t>(run, 1);
    for (int64_t o = 0; o < outer; o++) {
      GemmArgsOf<T> g = gemm_args<T>(A, B, M, N, K, a0 + batch_offset(A.t, o, first), b0 + batch_offset(B.t, o, first),
                                     c0 + o * run * M * N);
      g.batch = run;
      g.stride_a = sa, g.stride_b = sb, g.stride_c = M * N;
      kernels::gemm("matmul", dev, g);
    }
  });
  return c;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined("matmul", a_in, "a");
  check_defined("matmul", b_in, "b");
  check_floating("matmul", a_in);
  check_same_dtype("matmul", a_in, b_in);
  check_same_device("matmul", a_in, b_in);
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
