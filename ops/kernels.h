// ops/kernels.h — THE device dispatch: one function per primitive kernel, each with one visible `switch (device)`
// that picks the backend's kernel. Forwards and backwards (and backward()'s gradient accumulation) call these;
// nothing else in ops/ names sg::cpu:: / sg::cuda:: / sg::cuda_emu:: kernels for a dispatched family.
//
//   switch (device) {
//     case Device::CPU:   cpu::<kernel>(...)                    the CPU kernels (ops/cpu/), f32 and f64
//     case Device::CUDA:  cuda_emulation() ? cuda_emu::<kernel>(args)    the CUDA kernels stepped on the CPU
//                                          : cuda::<kernel>(args)        (autograd/device.h), or on the GPU;
//                                                                        f32 only: f64 is refused by the op's name
//     case Device::Metal: error "[op] no Metal backend in this build"
//   }
//
// `op` is the name errors carry ("silu", "add", "backward"): the op that asked, not the kernel.
//
// RECIPE — dispatching the next kernel family <family> (the elementwise family below is the worked example):
//   1. Its kernels' arguments are the ABI structs of ops/kernel_abi/<family>.h; its CUDA host functions are
//      declared in cuda/<family>.h for sg::cuda and sg::cuda_emu (cuda/README.md).
//   2. Here: include ops/kernel_abi/<family>.h and declare, per kernel, under a `// ---- <family>` heading,
//        template <class T> void <kernel>(const char* op, Device d, const <Kernel>Args<T>& a);
//      In kernels.cpp: include cuda/<family>.h and ops/cpu/<family>.h; the switch above (copy unary_forward:
//      the CPU case unpacks the struct into the cpu:: kernel's arguments, the CUDA case is `if constexpr` f32);
//      explicit instantiations for float and double at the end. A kernel with no f64 CPU version (or an index
//      dtype) instantiates what it has.
//   3. In the op (ops/<family>.cpp), forward and backward alike:
//        - checks: check_same_device(op, a, b) for every pair of tensor inputs (instead of check_cpu);
//        - outputs and gradients on the input's device: Tensor::empty(shape, dtype, x.device());
//        - pointers from x.device_data<T>() (memory of x's device), never x.data<T>() (host only);
//        - kernels::<kernel><T>(op, x.device(), args) inside dispatch_float.
//      Whatever the op calls besides its kernel (contiguous, sum_to, ...) must be dispatched too, or the op
//      refuses a CUDA tensor by that callee's name.
//   4. Tests: tests/cuda/test_dispatch_<family>_emu.cpp — the op on a CUDA tensor under CudaEmulationScope equals
//      the op on the CPU (values and gradients, tests/cuda/dispatch_checks.h), in both lane orders; the registry
//      walk (tests/cuda/registry_walk.h) and the tiny-model check (tests/cuda/model_check.h) run every op on the
//      device; tests/cuda/test_dispatch_gpu.cpp and test_devices_gpu.cpp run the same on a GPU when there is one.
//
// DISPATCHED (every family of cuda/): elementwise (unary, binary, affine, pow, where / masked_fill), cast (to_dtype
// between any two dtypes but f64, which a CUDA tensor refuses by the op's name as everywhere), reduce + copy
// (contiguous, cat, slice's backward, copy_into, sum, mean, var, sum_to, max, min), softmax (softmax, log_softmax,
// cross_entropy), norm (rms_norm, layer_norm, rope), topk (topk, argmax), index (embedding, index_select, index_add,
// gather, scatter_add), optim (AdamW, SGD, the grad norm, clipping), gemm (matmul, linear), attention
// (scaled_dot_product_attention), fp8 (quantize / dequantize, fp8_matmul, fp8_linear), indexer (hadamard_rotate;
// fp8_index_scores, a kernel with no op: models/dsa.cpp calls it), dropout (the mask drawn on the host, the mul
// kernel). Where a CPU loop has no device kernel with its contract, the op says how it gets by on a device (cat and
// slice's backward lay their output out dim-first; fp8_transpose_blocks goes through the host).
// CPU ONLY: nothing. What a CUDA tensor refuses is f64 (the CUDA backend computes f32): "[to_dtype] has no CUDA
// kernel yet for f64 ...".
//
// What this is not: a registry or a code generator. One function and one switch per kernel, read top to bottom.
#pragma once
#include "autograd/device.h"
#include "ops/kernel_abi/attention.h"
#include "ops/kernel_abi/cast.h"
#include "ops/kernel_abi/elementwise.h"
#include "ops/kernel_abi/fp8.h"
#include "ops/kernel_abi/gemm.h"
#include "ops/kernel_abi/index.h"
#include "ops/kernel_abi/indexer.h"
#include "ops/kernel_abi/norm.h"
#include "ops/kernel_abi/optim.h"
#include "ops/kernel_abi/reduce.h"
#include "ops/kernel_abi/softmax.h"
#include "ops/kernel_abi/topk.h"

namespace sg::kernels {

// ---- elementwise (ops/kernel_abi/elementwise.h; CPU ops/cpu/elementwise.h; CUDA cuda/elementwise.h) -----------
template <class T> void unary_forward(const char* op, Device d, const UnaryArgs<T>& a);            // y = f(x)
template <class T> void unary_backward(const char* op, Device d, const UnaryBackwardArgs<T>& a);   // dx = f'(x) dy
template <class T> void binary_forward(const char* op, Device d, const BinaryArgs<T>& a);          // out = a (op) b
template <class T> void affine_forward(const char* op, Device d, const AffineArgs<T>& a);          // y = alpha x + beta

// ---- pow, where, cast (ops/kernel_abi/elementwise.h, cast.h; CPU ops/cpu/elementwise.h; CUDA cuda/elementwise.h,
//      cuda/cast.h) ----------------------------------------------------------------------------------------------
template <class T> void pow_forward(const char* op, Device d, const PowArgs<T>& a);       // y = (T) pow((double) x, p)
template <class T> void where_forward(const char* op, Device d, const WhereArgs<T>& a);   // out = cond != 0 ? a : b
// dst = (dst_type) src, any pair of the eight dtypes on the CPU. On CUDA every pair of f32, i32, i64, bf16, f16,
// f8e4m3, f8e5m2; f64 on either side is refused ("[op] has no CUDA kernel yet for f64 ..."), as the CUDA backend
// computes f32: convert on the CPU, then move.
void cast(const char* op, Device d, const CastArgs& a);

// ---- reduce and copy (ops/kernel_abi/reduce.h; CPU ops/cpu/reduce.h, ops/cpu/copy.h; CUDA cuda/reduce.h) -------
template <class T> void reduce_rows(const char* op, Device d, const ReduceRowsArgs<T>& a);         // out[r] = Σ/max/min_c x[r, c]
template <class T> void arg_reduce_rows(const char* op, Device d, const ArgReduceRowsArgs<T>& a);  // out[r] = first argmax/argmin
// dst (contiguous) = src gathered through its strides. A copy moves bits, not numbers, so W is the element's WORD:
// uint8_t, uint16_t, uint32_t or uint64_t for a 1-, 2-, 4- or 8-byte dtype (the CPU takes all four). The CUDA kernel
// moves 32-bit words: an 8-byte element is copied as its two halves (one more dim of 2, so ndim < kMaxKernelDims);
// 1- and 2-byte elements are refused on CUDA by the op's name.
template <class W> void strided_copy(const char* op, Device d, const StridedCopyArgs<W>& a);
// The CPU's copy into a STRIDED destination: dst[i · dst_strides] = src[i · src_strides] over shape (cat and slice's
// backward write into a view of their output). No backend but the CPU has one: the CUDA kernel writes contiguous
// destinations only, so on CUDA those ops lay their output out so that each write is contiguous (ops/shape.cpp).
// (The sizes are pointers to the caller's arrays: no ABI struct, no rank limit, as the CPU loop has none.)
template <class W> struct StridedCopyIntoArgs {
  int64_t ndim;
  const int64_t* shape;
  const int64_t* src_strides;
  const int64_t* dst_strides;
  const W* src;
  W* dst;
};
template <class W> void strided_copy_into(const char* op, Device d, const StridedCopyIntoArgs<W>& a);

// ---- softmax (ops/kernel_abi/softmax.h; CPU ops/cpu/nn.h; CUDA cuda/softmax.h) ----------------------------------
template <class T> void softmax_forward(const char* op, Device d, const SoftmaxArgs<T>& a);
template <class T> void softmax_backward(const char* op, Device d, const SoftmaxBackwardArgs<T>& a);
template <class T> void log_softmax_forward(const char* op, Device d, const LogSoftmaxArgs<T>& a);
template <class T> void log_softmax_backward(const char* op, Device d, const LogSoftmaxBackwardArgs<T>& a);
template <class T> void cross_entropy_forward(const char* op, Device d, const CrossEntropyArgs<T>& a);
template <class T> void cross_entropy_backward(const char* op, Device d, const CrossEntropyBackwardArgs<T>& a);

// ---- norm and rope (ops/kernel_abi/norm.h; CPU ops/cpu/nn.h; CUDA cuda/norm.h) ---------------------------------
// The backward kernels of a device sum dweight / dbias over rows through a scratch buffer the op allocates on
// that device: these say how many elements (0 on the CPU, whose kernels need none; 0 when no dweight is asked).
int64_t rms_norm_backward_scratch_size(Device d, int64_t rows, int64_t D);
int64_t layer_norm_backward_scratch_size(Device d, int64_t rows, int64_t D);
// eps: the CPU kernels add it in double to a double mean (f32 rows too), the CUDA kernels add a.eps (T); the op
// passes both, so the CPU keeps its bits.
template <class T> void rms_norm_forward(const char* op, Device d, const RmsNormArgs<T>& a, double eps);
template <class T> void rms_norm_backward(const char* op, Device d, const RmsNormBackwardArgs<T>& a);
template <class T> void layer_norm_forward(const char* op, Device d, const LayerNormArgs<T>& a, double eps);
template <class T> void layer_norm_backward(const char* op, Device d, const LayerNormBackwardArgs<T>& a);
template <class T> void rope_forward(const char* op, Device d, const RopeArgs<T>& a);
template <class T> void rope_backward(const char* op, Device d, const RopeBackwardArgs<T>& a);

// ---- topk (ops/kernel_abi/topk.h; CPU ops/cpu/nn.h; CUDA cuda/topk.h) -------------------------------------------
template <class T> void topk_forward(const char* op, Device d, const TopkArgs<T>& a);
template <class T> void topk_backward(const char* op, Device d, const TopkBackwardArgs<T>& a);
template <class T> void argmax_forward(const char* op, Device d, const ArgmaxArgs<T>& a);

// ---- index (ops/kernel_abi/index.h; CPU ops/cpu/index.h; CUDA cuda/index.h); I = int32_t or int64_t -------------
template <class T, class I> void index_select_forward(const char* op, Device d, const IndexSelectArgs<T, I>& a);
template <class T, class I> void index_add_forward(const char* op, Device d, const IndexAddArgs<T, I>& a);
template <class T, class I> void gather_forward(const char* op, Device d, const GatherArgs<T, I>& a);
template <class T, class I> void scatter_add_forward(const char* op, Device d, const ScatterAddArgs<T, I>& a);

// ---- optimizer (ops/kernel_abi/optim.h; CPU ops/cpu/optim.h; CUDA cuda/optim.h); f32 only ----------------------
void adamw_update(const char* op, Device d, const AdamWKernelArgs& a);
void sgd_update(const char* op, Device d, const SGDKernelArgs& a);
// Σ_i Σ_j x[i][j]². The CPU returns it; a device writes it to a.out[0] in its memory (a.partials: scratch of
// sum_squares_partials(n, count) doubles there) and returns NaN: the op reads the result back.
double sum_squares(const char* op, Device d, const SumSquaresArgs& a);
void scale(const char* op, Device d, const ScaleArgs& a);

// ---- gemm (ops/kernel_abi/gemm.h; CPU ops/cpu/gemm.h; CUDA cuda/gemm.h) -----------------------------------------
// C = alpha op(A) op(B) + beta C for a.batch matrices (operand b at X + b · stride_x). The CPU runs one
// cpu::gemm_f32 per matrix: many small ones (attention heads) one per thread, few big ones with the threads inside
// each GEMM, as ops/linalg.cpp always did; CUDA launches cuda::gemm once (v3, or v4 for tf32). GemmArgsF64 is the
// same contract in double for the CPU's gradcheck GEMM (cpu::gemm_f64; the CUDA kernels are f32).
struct GemmArgsF64 {
  int32_t trans_a, trans_b;
  int64_t M, N, K;
  double alpha;
  const double* A;
  int64_t lda;
  const double* B;
  int64_t ldb;
  double beta;
  double* C;
  int64_t ldc;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
};
void gemm(const char* op, Device d, const GemmArgs& a);
void gemm(const char* op, Device d, const GemmArgsF64& a);

// ---- attention (ops/kernel_abi/attention.h; CPU ops/cpu/attention.h; CUDA cuda/attention.h) ---------------------
template <class T>
void attention_forward(const char* op, Device d, const AttentionArgs& a, const T* q, const T* k, const T* v, T* o, T* lse);
template <class T>
void attention_backward(const char* op, Device d, const AttentionArgs& a, const T* q, const T* k, const T* v, const T* o,
                        const T* lse, const T* do_, T* dq, T* dk, T* dv);

// ---- fp8 (ops/kernel_abi/fp8.h; CPU ops/cpu/fp8_quant.h, ops/cpu/fp8_gemm.h; CUDA cuda/fp8.h); f32 and E4M3 codes --
void act_quant(const char* op, Device d, const Fp8ActQuantArgs& a);          // 1×block tiles
void act_dequant(const char* op, Device d, const Fp8ActDequantArgs& a);
void weight_quant(const char* op, Device d, const Fp8WeightQuantArgs& a);    // block×block blocks
void weight_dequant(const char* op, Device d, const Fp8WeightDequantArgs& a);
void fp8_gemm(const char* op, Device d, const Fp8GemmArgs& a);               // blockwise scales, promoted sums

// ---- indexer (ops/kernel_abi/indexer.h; CPU ops/cpu/hadamard.h, ops/cpu/fp8_index.h; CUDA cuda/indexer.h) -------
// y = x · H_n / √n per row (f32 and f64 on the CPU; f32 and n <= 4096 on CUDA, a larger n refused by the kernel).
template <class T> void hadamard_rotate(const char* op, Device d, const HadamardArgs<T>& a);
// The FP8 index score of a.B sequences (f32, E4M3 codes): the CPU runs cpu::fp8_index_scores_f32 per sequence,
// CUDA one launch for all; the same bits.
void fp8_index_scores(const char* op, Device d, const Fp8IndexScoresArgs& a);

}  // namespace sg::kernels
