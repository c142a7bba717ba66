// ops/kernels.cpp — the device dispatch, one switch per kernel. See kernels.h (the recipe is there).
#include "ops/kernels.h"

#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/runtime.h"
#include "cuda/attention.h"
#include "cuda/cast.h"
#include "cuda/elementwise.h"
#include "cuda/fp8.h"
#include "cuda/gemm.h"
#include "cuda/index.h"
#include "cuda/indexer.h"
#include "cuda/norm.h"
#include "cuda/optim.h"
#include "cuda/reduce.h"
#include "cuda/softmax.h"
#include "cuda/topk.h"
#include "ops/checks.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/copy.h"
#include "ops/cpu/elementwise.h"
#include "ops/cpu/fp8_gemm.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/cpu/fp8_index.h"
#include "ops/cpu/gemm.h"
#include "ops/cpu/hadamard.h"
#include "ops/cpu/index.h"
#include "ops/cpu/nn.h"
#include "ops/cpu/optim.h"
#include "ops/cpu/reduce.h"

namespace sg::kernels {

namespace {

// The CUDA kernels compute f32, as the GPU trains (cuda/README.md); the CPU keeps f64 for gradchecks.
[[noreturn]] void cuda_needs_f32(const char* op) {
  op_error(op, "the CUDA backend computes f32; this tensor on cuda is f64 (convert it to f32 on the CPU, then move it)");
}
[[noreturn]] void no_metal(const char* op) { op_error(op, "no Metal backend in this build"); }

template <class T> constexpr bool is_f32 = std::is_same_v<T, float>;

std::vector<int64_t> dims_of(const int64_t* p, int n) { return std::vector<int64_t>(p, p + n); }

}  // namespace

// ---- elementwise -----------------------------------------------------------------------------------------------

template <class T> void unary_forward(const char* op, Device d, const UnaryArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::unary_forward<T>(a.op, a.x, a.y, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::unary_forward(a);
        else cuda::unary_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void unary_backward(const char* op, Device d, const UnaryBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::unary_backward<T>(a.op, a.x, a.y, a.dy, a.dx, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::unary_backward(a);
        else cuda::unary_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void binary_forward(const char* op, Device d, const BinaryArgs<T>& a) {
  switch (d) {
    case Device::CPU: {
      const std::vector<int64_t> shape(a.shape, a.shape + a.ndim), a_strides(a.a_strides, a.a_strides + a.ndim),
          b_strides(a.b_strides, a.b_strides + a.ndim);
      cpu::binary_forward<T>(a.op, shape, a.a, a_strides, a.b, b_strides, a.out);
      return;
    }
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::binary_forward(a);
        else cuda::binary_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void affine_forward(const char* op, Device d, const AffineArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::affine_forward<T>(a.x, a.alpha, a.beta, a.y, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::affine_forward(a);
        else cuda::affine_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- pow, where, cast ------------------------------------------------------------------------------------------

template <class T> void pow_forward(const char* op, Device d, const PowArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::pow_forward<T>(a.x, a.p, a.y, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::pow_forward(a);
        else cuda::pow_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void where_forward(const char* op, Device d, const WhereArgs<T>& a) {
  switch (d) {
    case Device::CPU: {
      const std::vector<int64_t> shape = dims_of(a.shape, a.ndim);
      cpu::where_forward<T>(shape, a.cond_type, a.cond, dims_of(a.cond_strides, a.ndim), a.a, dims_of(a.a_strides, a.ndim),
                            a.b, dims_of(a.b_strides, a.ndim), a.out);
      return;
    }
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::where_forward(a);
        else cuda::where_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// The CUDA kernel converts every pair (f64 too); a CUDA tensor is f32 by the backend's rule, so an f64 side is
// refused here, in words the registry walk (tests/cuda/registry_walk.h) counts as "not on this device".
void cast(const char* op, Device d, const CastArgs& a) {
  switch (d) {
    case Device::CPU: {
      const std::vector<int64_t> shape = dims_of(a.shape, a.ndim);
      cpu::cast(a.src_type, shape, a.src, dims_of(a.src_strides, a.ndim), a.dst_type, a.dst);
      return;
    }
    case Device::CUDA:
      if (a.src_type == ElemType::f64 || a.dst_type == ElemType::f64)
        op_error(op, "has no CUDA kernel yet for f64 (the CUDA backend computes f32): convert on the CPU, then move it");
      if (cuda_emulation()) cuda_emu::cast(a);
      else cuda::cast(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

template void pow_forward<float>(const char*, Device, const PowArgs<float>&);
template void pow_forward<double>(const char*, Device, const PowArgs<double>&);
template void where_forward<float>(const char*, Device, const WhereArgs<float>&);
template void where_forward<double>(const char*, Device, const WhereArgs<double>&);

// ---- reduce and copy -------------------------------------------------------------------------------------------

template <class T> void reduce_rows(const char* op, Device d, const ReduceRowsArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::reduce_rows<T>(a.op, a.x, a.rows, a.cols, a.out); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::reduce_rows(a);
        else cuda::reduce_rows(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void arg_reduce_rows(const char* op, Device d, const ArgReduceRowsArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::arg_reduce_rows<T>(a.op, a.x, a.rows, a.cols, a.out); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::arg_reduce_rows(a);
        else cuda::arg_reduce_rows(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

namespace {
// The CUDA copy kernel moves f32 values, i.e. 32-bit words: a load and a store, no arithmetic, so any 4-byte
// pattern (an i32, a NaN payload) arrives unchanged. An 8-byte element is its two 32-bit halves: one more
// innermost dim of 2 with stride 1, every other stride doubled.
template <class W> StridedCopyArgs<float> as_words(const char* op, const StridedCopyArgs<W>& a) {
  StridedCopyArgs<float> w{};
  w.ndim = a.ndim;
  for (int i = 0; i < a.ndim; i++) {
    w.shape[i] = a.shape[i];
    w.src_strides[i] = a.src_strides[i] * (int64_t)(sizeof(W) / 4);
  }
  if constexpr (sizeof(W) == 8) {
    if (a.ndim >= kMaxKernelDims)
      op_error(op, "the CUDA copy walks at most " + std::to_string(kMaxKernelDims) + " dims, and an 8-byte element "
                   "needs one of them for its two 32-bit halves; this view has " + std::to_string(a.ndim));
    w.shape[a.ndim] = 2;
    w.src_strides[a.ndim] = 1;
    w.ndim = a.ndim + 1;
  }
  w.src = reinterpret_cast<const float*>(a.src);
  w.dst = reinterpret_cast<float*>(a.dst);
  return w;
}
}  // namespace

template <class W> void strided_copy(const char* op, Device d, const StridedCopyArgs<W>& a) {
  switch (d) {
    case Device::CPU: {
      const std::vector<int64_t> shape = dims_of(a.shape, a.ndim);
      cpu::strided_copy<W>(shape, a.src, dims_of(a.src_strides, a.ndim), a.dst, contiguous_strides(shape));
      return;
    }
    case Device::CUDA:
      if constexpr (sizeof(W) >= 4) {
        const StridedCopyArgs<float> w = as_words(op, a);
        if (cuda_emulation()) cuda_emu::strided_copy(w);
        else cuda::strided_copy(w);
        return;
      }
      op_error(op, "the CUDA copy moves 4- and 8-byte elements; this tensor's are " + std::to_string(sizeof(W)) +
                       " bytes (bf16, f16, fp8): copy it on the CPU");
    case Device::Metal: no_metal(op);
  }
}

template <class W> void strided_copy_into(const char* op, Device d, const StridedCopyIntoArgs<W>& a) {
  switch (d) {
    case Device::CPU:
      cpu::strided_copy<W>(dims_of(a.shape, (int)a.ndim), a.src, dims_of(a.src_strides, (int)a.ndim), a.dst,
                           dims_of(a.dst_strides, (int)a.ndim));
      return;
    case Device::CUDA: op_error(op, "no CUDA kernel writes a strided destination (the copy kernel's is contiguous)");
    case Device::Metal: no_metal(op);
  }
}

// ---- softmax ---------------------------------------------------------------------------------------------------

template <class T> void softmax_forward(const char* op, Device d, const SoftmaxArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::softmax_forward<T>(a.x, a.y, a.rows, a.cols); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::softmax_forward(a);
        else cuda::softmax_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void softmax_backward(const char* op, Device d, const SoftmaxBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::softmax_backward<T>(a.y, a.dy, a.dx, a.rows, a.cols); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::softmax_backward(a);
        else cuda::softmax_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void log_softmax_forward(const char* op, Device d, const LogSoftmaxArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::log_softmax_forward<T>(a.x, a.y, a.rows, a.cols); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::log_softmax_forward(a);
        else cuda::log_softmax_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void log_softmax_backward(const char* op, Device d, const LogSoftmaxBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::log_softmax_backward<T>(a.y, a.dy, a.dx, a.rows, a.cols); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::log_softmax_backward(a);
        else cuda::log_softmax_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void cross_entropy_forward(const char* op, Device d, const CrossEntropyArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      cpu::cross_entropy_forward<T>(a.logits, a.targets, a.lse, a.loss, a.rows, a.V, a.ignore_index);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::cross_entropy_forward(a);
        else cuda::cross_entropy_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void cross_entropy_backward(const char* op, Device d, const CrossEntropyBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      cpu::cross_entropy_backward<T>(a.logits, a.targets, a.lse, a.scale, a.dlogits, a.rows, a.V, a.ignore_index);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::cross_entropy_backward(a);
        else cuda::cross_entropy_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- norm and rope ---------------------------------------------------------------------------------------------

int64_t rms_norm_backward_scratch_size(Device d, int64_t rows, int64_t D) {
  return d == Device::CPU ? 0 : sg::rms_norm_backward_scratch_size(rows, D);
}
int64_t layer_norm_backward_scratch_size(Device d, int64_t rows, int64_t D) {
  return d == Device::CPU ? 0 : sg::layer_norm_backward_scratch_size(rows, D);
}

template <class T> void rms_norm_forward(const char* op, Device d, const RmsNormArgs<T>& a, double eps) {
  switch (d) {
    case Device::CPU: cpu::rms_norm_forward<T>(a.x, a.weight, a.y, a.rstd, a.rows, a.D, eps); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::rms_norm_forward(a);
        else cuda::rms_norm_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void rms_norm_backward(const char* op, Device d, const RmsNormBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::rms_norm_backward<T>(a.x, a.weight, a.rstd, a.dy, a.dx, a.dweight, a.rows, a.D); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::rms_norm_backward(a);
        else cuda::rms_norm_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void layer_norm_forward(const char* op, Device d, const LayerNormArgs<T>& a, double eps) {
  switch (d) {
    case Device::CPU:
      cpu::layer_norm_forward<T>(a.x, a.weight, a.bias, a.y, a.mean, a.rstd, a.rows, a.D, eps);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::layer_norm_forward(a);
        else cuda::layer_norm_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void layer_norm_backward(const char* op, Device d, const LayerNormBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      cpu::layer_norm_backward<T>(a.x, a.weight, a.mean, a.rstd, a.dy, a.dx, a.dweight, a.dbias, a.rows, a.D);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::layer_norm_backward(a);
        else cuda::layer_norm_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void rope_forward(const char* op, Device d, const RopeArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      cpu::rope_forward<T>(a.x, a.cos, a.sin, a.y, a.B, a.S, a.H, a.dr, a.interleaved != 0);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::rope_forward(a);
        else cuda::rope_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void rope_backward(const char* op, Device d, const RopeBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      cpu::rope_backward<T>(a.dy, a.cos, a.sin, a.dx, a.B, a.S, a.H, a.dr, a.interleaved != 0);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::rope_backward(a);
        else cuda::rope_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- topk ------------------------------------------------------------------------------------------------------

template <class T> void topk_forward(const char* op, Device d, const TopkArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::topk_forward<T>(a.x, a.values, a.indices, a.rows, a.n, a.k, a.largest != 0); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::topk_forward(a);
        else cuda::topk_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void topk_backward(const char* op, Device d, const TopkBackwardArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::topk_backward<T>(a.dvalues, a.indices, a.dx, a.rows, a.n, a.k); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::topk_backward(a);
        else cuda::topk_backward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T> void argmax_forward(const char* op, Device d, const ArgmaxArgs<T>& a) {
  switch (d) {
    case Device::CPU: cpu::argmax_forward<T>(a.x, a.out, a.rows, a.n); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::argmax_forward(a);
        else cuda::argmax_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- index -----------------------------------------------------------------------------------------------------

template <class T, class I> void index_select_forward(const char* op, Device d, const IndexSelectArgs<T, I>& a) {
  switch (d) {
    case Device::CPU: cpu::index_select_forward<T, I>(a.x, a.index, a.out, a.outer, a.n, a.k, a.inner); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::index_select_forward(a);
        else cuda::index_select_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T, class I> void index_add_forward(const char* op, Device d, const IndexAddArgs<T, I>& a) {
  switch (d) {
    case Device::CPU: cpu::index_add_forward<T, I>(a.out, a.index, a.src, a.outer, a.n, a.k, a.inner); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::index_add_forward(a);
        else cuda::index_add_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T, class I> void gather_forward(const char* op, Device d, const GatherArgs<T, I>& a) {
  switch (d) {
    case Device::CPU:
      cpu::gather_forward<T, I>(a.x, dims_of(a.x_shape, a.ndim), a.index, dims_of(a.index_shape, a.ndim), a.dim, a.out);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::gather_forward(a);
        else cuda::gather_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T, class I> void scatter_add_forward(const char* op, Device d, const ScatterAddArgs<T, I>& a) {
  switch (d) {
    case Device::CPU:
      cpu::scatter_add_forward<T, I>(a.out, dims_of(a.out_shape, a.ndim), a.index, dims_of(a.index_shape, a.ndim), a.dim,
                                     a.src);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::scatter_add_forward(a);
        else cuda::scatter_add_forward(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- optimizer -------------------------------------------------------------------------------------------------

void adamw_update(const char* op, Device d, const AdamWKernelArgs& a) {
  switch (d) {
    case Device::CPU: cpu::adamw_update_f32(a.p, a.g, a.m, a.v, a.n, a.step); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::adamw_update_f32(a);
      else cuda::adamw_update_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void sgd_update(const char* op, Device d, const SGDKernelArgs& a) {
  switch (d) {
    case Device::CPU: cpu::sgd_update_f32(a.p, a.g, a.buf, a.n, a.step); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::sgd_update_f32(a);
      else cuda::sgd_update_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

double sum_squares(const char* op, Device d, const SumSquaresArgs& a) {
  switch (d) {
    case Device::CPU: return cpu::sum_squares_f32(a.x, a.n, a.count);
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::sum_squares_f32(a);
      else cuda::sum_squares_f32(a);
      return std::numeric_limits<double>::quiet_NaN();
    case Device::Metal: no_metal(op);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void scale(const char* op, Device d, const ScaleArgs& a) {
  switch (d) {
    case Device::CPU: cpu::scale_f32(a.x, a.n, a.c); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::scale_f32(a);
      else cuda::scale_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

// ---- gemm ------------------------------------------------------------------------------------------------------

namespace {
// The CPU's batched GEMM: one cpu GEMM per matrix. Many small matrices (attention heads): one thread per matrix.
// Few big ones: the GEMM's threads inside (the policy ops/linalg.cpp has always used).
template <class A, class F> void cpu_batched(const A& a, F&& one_gemm) {
  auto one = [&](int64_t b) { one_gemm(a.A + b * a.stride_a, a.B + b * a.stride_b, a.C + b * a.stride_c); };
  if (a.batch <= 1) {
    one(0);
  } else if (a.batch >= 2 * num_threads() && a.M * a.N * a.K < (int64_t)1 << 22) {
    parallel_for(a.batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) one(b);
    });
  } else {
    for (int64_t b = 0; b < a.batch; b++) one(b);
  }
}
}  // namespace

void gemm(const char* op, Device d, const GemmArgs& a) {
  switch (d) {
    case Device::CPU:
      cpu_batched(a, [&](const float* A, const float* B, float* C) {
        cpu::gemm_f32(a.trans_a != 0, a.trans_b != 0, a.M, a.N, a.K, a.alpha, A, a.lda, B, a.ldb, a.beta, C, a.ldc);
      });
      return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::gemm(a);
      else cuda::gemm(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void gemm(const char* op, Device d, const GemmArgsF64& a) {
  switch (d) {
    case Device::CPU:
      cpu_batched(a, [&](const double* A, const double* B, double* C) {
        cpu::gemm_f64(a.trans_a != 0, a.trans_b != 0, a.M, a.N, a.K, a.alpha, A, a.lda, B, a.ldb, a.beta, C, a.ldc);
      });
      return;
    case Device::CUDA: cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- attention -------------------------------------------------------------------------------------------------

template <class T>
void attention_forward(const char* op, Device d, const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse) {
  switch (d) {
    case Device::CPU: cpu::attention_forward<T>(a, q, k, v, o, lse); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::attention_forward(a, q, k, v, o, lse);
        else cuda::attention_forward(a, q, k, v, o, lse);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

template <class T>
void attention_backward(const char* op, Device d, const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o,
                        const T* lse, const T* do_, T* dq, T* dk, T* dv) {
  switch (d) {
    case Device::CPU: cpu::attention_backward<T>(a, q, k, v, o, lse, do_, dq, dk, dv); return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::attention_backward(a, q, k, v, o, lse, do_, dq, dk, dv);
        else cuda::attention_backward(a, q, k, v, o, lse, do_, dq, dk, dv);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

// ---- fp8 -------------------------------------------------------------------------------------------------------

void act_quant(const char* op, Device d, const Fp8ActQuantArgs& a) {
  switch (d) {
    case Device::CPU: cpu::act_quant_f32(a.x, a.rows, a.K, a.block, a.ue8m0 != 0, a.codes, a.scales); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::act_quant_f32(a);
      else cuda::act_quant_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void act_dequant(const char* op, Device d, const Fp8ActDequantArgs& a) {
  switch (d) {
    case Device::CPU: cpu::act_dequant_f32(a.codes, a.scales, a.rows, a.K, a.block, a.out); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::act_dequant_f32(a);
      else cuda::act_dequant_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void weight_quant(const char* op, Device d, const Fp8WeightQuantArgs& a) {
  switch (d) {
    case Device::CPU: cpu::weight_quant_f32(a.w, a.N, a.K, a.block, a.codes, a.scale_inv); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::weight_quant_f32(a);
      else cuda::weight_quant_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void weight_dequant(const char* op, Device d, const Fp8WeightDequantArgs& a) {
  switch (d) {
    case Device::CPU: cpu::weight_dequant_f32(a.codes, a.scale_inv, a.N, a.K, a.block, a.out); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::weight_dequant_f32(a);
      else cuda::weight_dequant_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

void fp8_gemm(const char* op, Device d, const Fp8GemmArgs& a) {
  switch (d) {
    case Device::CPU: cpu::fp8_gemm(a); return;
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::fp8_gemm(a);
      else cuda::fp8_gemm(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

// ---- indexer ---------------------------------------------------------------------------------------------------

template <class T> void hadamard_rotate(const char* op, Device d, const HadamardArgs<T>& a) {
  switch (d) {
    case Device::CPU:
      if constexpr (is_f32<T>) cpu::hadamard_rotate_f32(a.x, a.rows, a.n, a.y);
      else cpu::hadamard_rotate_f64(a.x, a.rows, a.n, a.y);
      return;
    case Device::CUDA:
      if constexpr (is_f32<T>) {
        if (cuda_emulation()) cuda_emu::hadamard_rotate_f32(a);
        else cuda::hadamard_rotate_f32(a);
        return;
      }
      cuda_needs_f32(op);
    case Device::Metal: no_metal(op);
  }
}

void fp8_index_scores(const char* op, Device d, const Fp8IndexScoresArgs& a) {
  switch (d) {
    case Device::CPU: {
      // (the CPU kernel checks S, H, D, T and block; these are the batch's own, and nb needs block >= 1)
      if (a.B < 0 || a.key_rows < a.T || a.block < 1)
        op_error(op, "fp8_index_scores: need B >= 0, key_rows >= T and block >= 1, got B " + std::to_string(a.B) +
                         ", key_rows " + std::to_string(a.key_rows) + ", T " + std::to_string(a.T) + ", block " +
                         std::to_string(a.block));
      const int64_t nb = cpu::fp8_num_blocks(a.D, a.block);
      for (int64_t b = 0; b < a.B; b++)
        cpu::fp8_index_scores_f32(a.q_codes + b * a.S * a.H * a.D, a.q_scales + b * a.S * a.H * nb,
                                  a.weights + b * a.S * a.H, a.k_codes + b * a.key_rows * a.D,
                                  a.k_scales + b * a.key_rows * nb, a.S, a.H, a.D, a.T, a.block,
                                  a.scores + b * a.S * a.T);
      return;
    }
    case Device::CUDA:
      if (cuda_emulation()) cuda_emu::fp8_index_scores_f32(a);
      else cuda::fp8_index_scores_f32(a);
      return;
    case Device::Metal: no_metal(op);
  }
}

template void hadamard_rotate<float>(const char*, Device, const HadamardArgs<float>&);
template void hadamard_rotate<double>(const char*, Device, const HadamardArgs<double>&);

template void unary_forward<float>(const char*, Device, const UnaryArgs<float>&);
template void unary_forward<double>(const char*, Device, const UnaryArgs<double>&);
template void unary_backward<float>(const char*, Device, const UnaryBackwardArgs<float>&);
template void unary_backward<double>(const char*, Device, const UnaryBackwardArgs<double>&);
template void binary_forward<float>(const char*, Device, const BinaryArgs<float>&);
template void binary_forward<double>(const char*, Device, const BinaryArgs<double>&);
template void affine_forward<float>(const char*, Device, const AffineArgs<float>&);
template void affine_forward<double>(const char*, Device, const AffineArgs<double>&);

template void reduce_rows<float>(const char*, Device, const ReduceRowsArgs<float>&);
template void arg_reduce_rows<float>(const char*, Device, const ArgReduceRowsArgs<float>&);
template void softmax_forward<float>(const char*, Device, const SoftmaxArgs<float>&);
template void softmax_backward<float>(const char*, Device, const SoftmaxBackwardArgs<float>&);
template void log_softmax_forward<float>(const char*, Device, const LogSoftmaxArgs<float>&);
template void log_softmax_backward<float>(const char*, Device, const LogSoftmaxBackwardArgs<float>&);
template void cross_entropy_forward<float>(const char*, Device, const CrossEntropyArgs<float>&);
template void cross_entropy_backward<float>(const char*, Device, const CrossEntropyBackwardArgs<float>&);
template void rms_norm_forward<float>(const char*, Device, const RmsNormArgs<float>&, double);
template void rms_norm_backward<float>(const char*, Device, const RmsNormBackwardArgs<float>&);
template void layer_norm_forward<float>(const char*, Device, const LayerNormArgs<float>&, double);
template void layer_norm_backward<float>(const char*, Device, const LayerNormBackwardArgs<float>&);
template void rope_forward<float>(const char*, Device, const RopeArgs<float>&);
template void rope_backward<float>(const char*, Device, const RopeBackwardArgs<float>&);
template void topk_forward<float>(const char*, Device, const TopkArgs<float>&);
template void topk_backward<float>(const char*, Device, const TopkBackwardArgs<float>&);
template void argmax_forward<float>(const char*, Device, const ArgmaxArgs<float>&);
template void index_select_forward<float, int32_t>(const char*, Device, const IndexSelectArgs<float, int32_t>&);
template void index_select_forward<float, int64_t>(const char*, Device, const IndexSelectArgs<float, int64_t>&);
template void index_add_forward<float, int32_t>(const char*, Device, const IndexAddArgs<float, int32_t>&);
template void index_add_forward<float, int64_t>(const char*, Device, const IndexAddArgs<float, int64_t>&);
template void gather_forward<float, int32_t>(const char*, Device, const GatherArgs<float, int32_t>&);
template void gather_forward<float, int64_t>(const char*, Device, const GatherArgs<float, int64_t>&);
template void scatter_add_forward<float, int32_t>(const char*, Device, const ScatterAddArgs<float, int32_t>&);
template void scatter_add_forward<float, int64_t>(const char*, Device, const ScatterAddArgs<float, int64_t>&);
template void attention_forward<float>(const char*, Device, const AttentionArgs&, const float*, const float*, const float*, float*, float*);
template void attention_backward<float>(const char*, Device, const AttentionArgs&, const float*, const float*, const float*, const float*, const float*, const float*, float*, float*, float*);
template void reduce_rows<double>(const char*, Device, const ReduceRowsArgs<double>&);
template void arg_reduce_rows<double>(const char*, Device, const ArgReduceRowsArgs<double>&);
template void softmax_forward<double>(const char*, Device, const SoftmaxArgs<double>&);
template void softmax_backward<double>(const char*, Device, const SoftmaxBackwardArgs<double>&);
template void log_softmax_forward<double>(const char*, Device, const LogSoftmaxArgs<double>&);
template void log_softmax_backward<double>(const char*, Device, const LogSoftmaxBackwardArgs<double>&);
template void cross_entropy_forward<double>(const char*, Device, const CrossEntropyArgs<double>&);
template void cross_entropy_backward<double>(const char*, Device, const CrossEntropyBackwardArgs<double>&);
template void rms_norm_forward<double>(const char*, Device, const RmsNormArgs<double>&, double);
template void rms_norm_backward<double>(const char*, Device, const RmsNormBackwardArgs<double>&);
template void layer_norm_forward<double>(const char*, Device, const LayerNormArgs<double>&, double);
template void layer_norm_backward<double>(const char*, Device, const LayerNormBackwardArgs<double>&);
template void rope_forward<double>(const char*, Device, const RopeArgs<double>&);
template void rope_backward<double>(const char*, Device, const RopeBackwardArgs<double>&);
template void topk_forward<double>(const char*, Device, const TopkArgs<double>&);
template void topk_backward<double>(const char*, Device, const TopkBackwardArgs<double>&);
template void argmax_forward<double>(const char*, Device, const ArgmaxArgs<double>&);
template void index_select_forward<double, int32_t>(const char*, Device, const IndexSelectArgs<double, int32_t>&);
template void index_select_forward<double, int64_t>(const char*, Device, const IndexSelectArgs<double, int64_t>&);
template void index_add_forward<double, int32_t>(const char*, Device, const IndexAddArgs<double, int32_t>&);
template void index_add_forward<double, int64_t>(const char*, Device, const IndexAddArgs<double, int64_t>&);
template void gather_forward<double, int32_t>(const char*, Device, const GatherArgs<double, int32_t>&);
template void gather_forward<double, int64_t>(const char*, Device, const GatherArgs<double, int64_t>&);
template void scatter_add_forward<double, int32_t>(const char*, Device, const ScatterAddArgs<double, int32_t>&);
template void scatter_add_forward<double, int64_t>(const char*, Device, const ScatterAddArgs<double, int64_t>&);
template void attention_forward<double>(const char*, Device, const AttentionArgs&, const double*, const double*, const double*, double*, double*);
template void attention_backward<double>(const char*, Device, const AttentionArgs&, const double*, const double*, const double*, const double*, const double*, const double*, double*, double*, double*);

template void strided_copy<uint8_t>(const char*, Device, const StridedCopyArgs<uint8_t>&);
template void strided_copy<uint16_t>(const char*, Device, const StridedCopyArgs<uint16_t>&);
template void strided_copy<uint32_t>(const char*, Device, const StridedCopyArgs<uint32_t>&);
template void strided_copy<uint64_t>(const char*, Device, const StridedCopyArgs<uint64_t>&);
template void strided_copy_into<uint8_t>(const char*, Device, const StridedCopyIntoArgs<uint8_t>&);
template void strided_copy_into<uint16_t>(const char*, Device, const StridedCopyIntoArgs<uint16_t>&);
template void strided_copy_into<uint32_t>(const char*, Device, const StridedCopyIntoArgs<uint32_t>&);
template void strided_copy_into<uint64_t>(const char*, Device, const StridedCopyIntoArgs<uint64_t>&);

}  // namespace sg::kernels
