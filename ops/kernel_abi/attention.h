// ops/kernel_abi/attention.h — the fused causal attention kernels' arguments (ops/cpu/attention.h, cuda/attention.h).
//
// One plain struct shared by every backend (README.md, Design §3): fixed-width sizes and strides, the softmax
// scale, the mask, and the packed-sequence array (host memory for the CPU kernels and the CUDA emulation, device
// memory for CUDA). The tensors themselves are the kernels' pointer arguments, as in the CPU kernels. Its three
// helpers are the mask, written once: every backend asks them which keys a query row sees. Compiles as C++ and
// CUDA (SG_HOST_DEVICE, from ops/scalar_math.h).
//
// Layout (all in elements; the last dim of q, k, v is contiguous, the other three dims strided, so a
// KV cache stored [B, Smax, Hkv, D] is read in place without a copy):
//   q    [B, H,   S, D ]  q[b, h, s, :]   at q + b·q_sb + h·q_sh + s·q_ss
//   k    [B, Hkv, T, D ]  k[b, g, t, :]   at k + b·k_sb + g·k_sh + t·k_ss
//   v    [B, Hkv, T, Dv]  v[b, g, t, :]   at v + b·v_sb + g·v_sh + t·v_ss
//   o    [B, H,   S, Dv]  contiguous (out)
//   lse  [B, H,   S]      contiguous (out)
// GQA: query head h reads kv head g = h / (H / Hkv)   (H = Hkv: MHA; Hkv = 1: MQA).
// Causal: query row s sits at absolute position start_pos + s and sees keys t ≤ start_pos + s.
// Packed sequences (optional, causal only): first_key[b·S + s] is the first key row s of batch b sees (the
// start of its segment), so it sees keys [first_key, start_pos + s] — a band. The caller (ops/attention.cpp)
// guarantees first_key ≤ start_pos + s (a row always sees its own key: no fully masked row) and that
// first_key is non-decreasing in s (segments are contiguous runs). nullptr: every row starts at key 0.
#pragma once
#include <cstdint>

#include "ops/scalar_math.h"  // SG_HOST_DEVICE

namespace sg {

struct AttentionArgs {
  int64_t B = 0, H = 0, Hkv = 0, S = 0, T = 0, D = 0, Dv = 0;
  int64_t q_sb = 0, q_sh = 0, q_ss = 0;  // strides of q's b, h, s dims (d has stride 1)
  int64_t k_sb = 0, k_sh = 0, k_ss = 0;  // strides of k's b, g, t dims
  int64_t v_sb = 0, v_sh = 0, v_ss = 0;  // strides of v's b, g, t dims
  double scale = 1.0;                    // softmax_scale, usually D^−1/2
  int32_t causal = 1;                    // 0 or 1 (an int32, not a bool: the same 4 bytes on every compiler)
  int64_t start_pos = 0;                 // absolute position of query row 0 (causal only)
  const int64_t* first_key = nullptr;    // [B, S] contiguous, or nullptr (see above)

  SG_HOST_DEVICE int64_t group() const { return H / Hkv; }  // query heads per kv head
  // Keys [0, visible_keys(s)) are seen by query row s.
  SG_HOST_DEVICE int64_t visible_keys(int64_t s) const {
    if (!causal) return T;
    int64_t n = start_pos + s + 1;
    return n < T ? n : T;
  }
  // Keys before first_visible_key(b, s) belong to earlier segments of row b: masked (0 without segments).
  SG_HOST_DEVICE int64_t first_visible_key(int64_t b, int64_t s) const { return first_key ? first_key[b * S + s] : 0; }
};

}  // namespace sg
