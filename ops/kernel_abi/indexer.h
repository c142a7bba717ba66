// ops/kernel_abi/indexer.h — the arguments of DeepSeek-V3.2's lightning-indexer kernels (models/dsa.h): the
// Walsh–Hadamard rotation applied to q^I and k^I before FP8 quantization, and the FP8 index score. One plain struct
// per kernel; the semantics are the CPU kernels' (ops/cpu/hadamard.h, ops/cpu/fp8_index.h), which the device
// kernels (cuda/kernels/indexer.cuh) match bit for bit. Pointers are host memory for the CPU kernels and the CUDA
// emulation, device memory for CUDA. Codes are E4M3 bits (ops/fp8.h). Compiles as C++ and CUDA.
#pragma once
#include <cstdint>

namespace sg {

// y [rows, n] = x [rows, n] · H_n / √n, n a power of two (Sylvester order); x and y contiguous, and may be the
// same buffer.
template <class T> struct HadamardArgs {
  int64_t rows = 0, n = 0;
  const T* x = nullptr;
  T* y = nullptr;
};

// B sequences of ops/cpu/fp8_index.h's score, nb = ceil(D / block):
//   scores[b, s, t] = Σ_h weights[b, s, h] · ReLU( Σ_tile q_scales[b, s, h, tile] · k_scales[b, t, tile]
//                                                   · Σ_{d ∈ tile} e4m3(q_codes[b, s, h, d]) · e4m3(k_codes[b, t, d]) )
// for s < S, t < T. The keys of sequence b start at row b · key_rows (key_rows >= T): a KV-cache buffer of
// max_seq_len rows per sequence is passed as is, and its rows [T, key_rows) are not read.
struct Fp8IndexScoresArgs {
  const uint8_t* q_codes = nullptr;  // [B, S, H, D]
  const float* q_scales = nullptr;   // [B, S, H, nb]
  const float* weights = nullptr;    // [B, S, H]
  const uint8_t* k_codes = nullptr;  // [B, key_rows, D]
  const float* k_scales = nullptr;   // [B, key_rows, nb]
  float* scores = nullptr;           // [B, S, T], overwritten
  int64_t B = 0, S = 0, H = 0, D = 0, T = 0;
  int64_t key_rows = 0;              // rows per sequence in k_codes / k_scales (the batch stride in rows)
  int64_t block = 128;               // quantization tile width along D
};

}  // namespace sg
