// ops/kernel_abi/softmax.h — the softmax, log_softmax and cross-entropy kernels' arguments, one plain struct per
// kernel (the CPU kernels: ops/cpu/nn.h; the CUDA ones: cuda/kernels/softmax.cuh).
//
// Same rules as ops/kernel_abi/elementwise.h: fixed-width fields and raw pointers. Every buffer is contiguous,
// row-major, the softmax dim last. Compiles as C++ and CUDA.
#pragma once
#include <cstdint>

namespace sg {

// x, y: [rows, cols].  softmax: y = exp(x − max) / Σ exp(x − max);  log_softmax: y = x − max − log Σ exp(x − max).
template <class T> struct SoftmaxArgs {
  int64_t rows;
  int64_t cols;
  const T* x;
  T* y;
};
template <class T> using LogSoftmaxArgs = SoftmaxArgs<T>;

// y (the forward output), dy, dx: [rows, cols].
// softmax: dx = y ⊙ (dy − Σ_c dy ⊙ y);  log_softmax: dx = dy − exp(y) ⊙ Σ_c dy.
template <class T> struct SoftmaxBackwardArgs {
  int64_t rows;
  int64_t cols;
  const T* y;
  const T* dy;
  T* dx;
};
template <class T> using LogSoftmaxBackwardArgs = SoftmaxBackwardArgs<T>;

// logits: [rows, V], targets: [rows] (in [0, V) or == ignore_index).
// lse: [rows] out, log Σ_c exp(logits[r, c]);  loss: [rows] out, lse[r] − logits[r, targets[r]]; both 0 on ignored
// rows. A target outside [0, V) that is not ignore_index (the op checks first) gives NaN, never an out-of-row read.
template <class T> struct CrossEntropyArgs {
  int64_t rows;
  int64_t V;
  int64_t ignore_index;
  const T* logits;
  const int64_t* targets;
  T* lse;
  T* loss;
};

// dlogits: [rows, V] out.  dlogits[r, c] = scale · (exp(logits[r, c] − lse[r]) − [c == targets[r]]), 0 on ignored
// rows; lse is the forward's; the op passes scale = dloss / n_valid.
template <class T> struct CrossEntropyBackwardArgs {
  int64_t rows;
  int64_t V;
  int64_t ignore_index;
  T scale;
  const T* logits;
  const int64_t* targets;
  const T* lse;
  T* dlogits;
};

}  // namespace sg
