// ops/attention.cpp — scaled_dot_product_attention (see attention.h): argument checks, the kernel through the
// device dispatch (ops/kernels.h: ops/cpu/attention.cpp, or the CUDA flash kernels of cuda/attention.h), the saved
// tensors and the backward, side by side.
//
// Forward, per (b, h) with kv head g = h / (H/Hkv), per query row s (P never leaves the kernel):
//   S_st = scale · q_s · k_t  (t ≤ start_pos + s when causal),  P = softmax_t(S),  o_s = Σ_t P_st v_t
//   saved: q, k, v (as given), o, lse_s = log Σ_t exp(S_st)
// Backward (kernel recomputes P_st = exp(S_st − lse_s)):
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(dO ⊙ O)),  dQ = dS K · scale,  dK = dSᵀ Q · scale,
//   with dK, dV summed over the query heads that share a kv head.
// Packed sequences: segment_ids [B, T] become first_key [B, S] — the first position of the run (segment)
// that holds each query row's position — and both kernels skip the keys before it (S_st = −∞, P_st = 0).
#include "ops/attention.h"

#include <algorithm>
#include <map>

#include "autograd/node.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace sg {

static constexpr const char* kOp = "scaled_dot_product_attention";

// x itself when the kernel can read it in place — its last dim contiguous and its rows (dim 2) at
// least a row apart, as GEMM's leading dimension must be — otherwise a contiguous copy. No history
// either way: the kernel reads numbers.
static Tensor kernel_operand(const Tensor& x) {
  Tensor d = x.detach();
  bool last_ok = d.strides()[3] == 1 || d.size(3) == 1;
  bool rows_ok = d.size(2) == 1 || d.strides()[2] >= d.size(3);
  if (last_ok && rows_ok) return d;
  NoGradGuard no_grad;
  return contiguous(d);
}
// The row stride the kernel uses (a single row may have any stride; GEMM wants one >= the row length).
static int64_t row_stride(const Tensor& x) { return std::max({x.strides()[2], x.size(3), int64_t(1)}); }

static Tensor contiguous_data(const Tensor& x) {
  NoGradGuard no_grad;
  return contiguous(x.detach());
}

// first_key [B, S] i64 for the kernel (ops/kernel_abi/attention.h), on the CPU: for query row s (position
// p = sp + s) of row b, the first position of the run of segment_ids[b, :] that holds p. Checks segment_ids (read
// on the host from any device): an i64 [B, T] tensor in which every id is one contiguous run per row.
static Tensor segment_first_keys(const Tensor& segment_ids, int64_t B, int64_t S, int64_t T, int64_t sp,
                                 const std::string& shapes) {
  if (segment_ids.dtype() != DType::i64 || segment_ids.shape() != Shape{B, T})
    op_error(kOp, "segment_ids " + segment_ids.describe() + " must be an i64 tensor [B, T] = " + shape_str({B, T}) +
                      ", one segment id per key position" + shapes);
  const std::vector<int64_t> seg = segment_ids.to_i64_vector();
  Tensor first = Tensor::empty({B, S}, DType::i64);
  int64_t* f = first.data<int64_t>();
  std::vector<int64_t> run_start(T);
  for (int64_t b = 0; b < B; b++) {
    const int64_t* row = seg.data() + b * T;
    std::map<int64_t, int64_t> run_of;  // id -> where its run starts
    for (int64_t t = 0; t < T; t++) {
      if (t > 0 && row[t] == row[t - 1]) {
        run_start[t] = run_start[t - 1];
        continue;
      }
      auto [it, fresh] = run_of.emplace(row[t], t);
      if (!fresh)
        op_error(kOp, "segment_ids " + segment_ids.describe() + ": row " + std::to_string(b) + " has segment id " +
                          std::to_string(row[t]) + " at positions " + std::to_string(it->second) + " and " +
                          std::to_string(t) + " with another segment between; each segment must be one " +
                          "contiguous run of positions" + shapes);
      run_start[t] = t;
    }
    for (int64_t s = 0; s < S; s++) f[b * S + s] = run_start[sp + s];
  }
  return first;
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    std::optional<int64_t> start_pos, const Tensor& segment_ids) {
  for (auto [t, what] : {std::pair{q, "q"}, std::pair{k, "k"}, std::pair{v, "v"}}) {
    check_defined(kOp, t, what);
    check_floating(kOp, t);
    if (t.dim() != 4)
      op_error(kOp, std::string(what) + " " + t.describe() + " must be 4-D: q [B, H, S, D], k [B, Hkv, T, D], v [B, Hkv, T, Dv]");
  }
  check_same_dtype(kOp, q, k);
  check_same_dtype(kOp, q, v);
  check_same_device(kOp, q, k);
  check_same_device(kOp, q, v);
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), T = k.size(2), Dv = v.size(3);
  auto shapes = [&] { return " (q " + q.describe() + ", k " + k.describe() + ", v " + v.describe() + ")"; };
  if (k.size(0) != B || v.size(0) != B) op_error(kOp, "batch sizes differ" + shapes());
  if (k.size(3) != D) op_error(kOp, "q and k have different head dims " + std::to_string(D) + " and " + std::to_string(k.size(3)) + shapes());
  if (v.size(1) != Hkv || v.size(2) != T) op_error(kOp, "k and v must have the same [Hkv, T] dims" + shapes());
  if (Hkv == 0 || H % Hkv != 0)
    op_error(kOp, "the " + std::to_string(H) + " query heads of q cannot be split into groups over the " +
                      std::to_string(Hkv) + " kv heads of k (Hkv must divide H)" + shapes());
  int64_t sp = start_pos.value_or(T - S);
  if (causal && (sp < 0 || sp + S > T))
    op_error(kOp, "start_pos " + std::to_string(sp) + " with S = " + std::to_string(S) + " query rows needs 0 <= start_pos <= T - S = " +
                      std::to_string(T - S) + shapes());
  if (causal && T == 0 && S > 0) op_error(kOp, "causal attention with no keys" + shapes());
  const Device dev = q.device();
  Tensor first_key;  // [B, S] i64 on q's device: packed sequences only
  if (segment_ids.defined()) {
    if (!causal) op_error(kOp, "segment_ids " + segment_ids.describe() + " need causal attention" + shapes());
    // (segment_ids may live on any device: they are read on the host, where first_key is built, then moved to q's)
    first_key = segment_first_keys(segment_ids, B, S, T, sp, shapes()).to(dev);
  }

  Tensor qc = kernel_operand(q), kc = kernel_operand(k), vc = kernel_operand(v);
  AttentionArgs a;
  a.B = B, a.H = H, a.Hkv = Hkv, a.S = S, a.T = T, a.D = D, a.Dv = Dv;
  a.q_sb = qc.strides()[0], a.q_sh = qc.strides()[1], a.q_ss = row_stride(qc);
  a.k_sb = kc.strides()[0], a.k_sh = kc.strides()[1], a.k_ss = row_stride(kc);
  a.v_sb = vc.strides()[0], a.v_sh = vc.strides()[1], a.v_ss = row_stride(vc);
  a.scale = scale, a.causal = causal, a.start_pos = causal ? sp : 0;
  a.first_key = first_key.defined() ? first_key.device_data<int64_t>() : nullptr;

  Tensor out = Tensor::empty({B, H, S, Dv}, q.dtype(), dev);
  Tensor lse = Tensor::empty({B, H, S}, q.dtype(), dev);
  if (B * H * S > 0) {
    dispatch_float(q.dtype(), kOp, [&]<class T>() {
      kernels::attention_forward<T>(kOp, dev, a, qc.device_data<T>(), kc.device_data<T>(), vc.device_data<T>(),
                                    out.device_data<T>(), lse.device_data<T>());
    });
  } else {
    out = Tensor::zeros({B, H, S, Dv}, q.dtype(), dev);
  }

  if (needs_grad({q, k, v})) {
    Tensor os = out.detach();
    // (first_key is captured so that the array a.first_key points into lives as long as the backward)
    record(kOp, out, {q, k, v}, [a, qc, kc, vc, os, lse, first_key](const Tensor& dout) {
      const char* bname = "scaled_dot_product_attention_backward";
      const Device dev = qc.device();
      check_same_device(bname, dout, qc);
      Tensor dq = Tensor::empty({a.B, a.H, a.S, a.D}, qc.dtype(), dev);
      Tensor dk = Tensor::empty({a.B, a.Hkv, a.T, a.D}, qc.dtype(), dev);  // the kernels overwrite all three
      Tensor dv = Tensor::empty({a.B, a.Hkv, a.T, a.Dv}, qc.dtype(), dev);
      if (a.B * a.H * a.S > 0) {
        Tensor dos = contiguous_data(dout);
        dispatch_float(qc.dtype(), bname, [&]<class T>() {
          kernels::attention_backward<T>(bname, dev, a, qc.device_data<T>(), kc.device_data<T>(), vc.device_data<T>(),
                                         os.device_data<T>(), lse.device_data<T>(), dos.device_data<T>(), dq.device_data<T>(),
                                         dk.device_data<T>(), dv.device_data<T>());
        });
      } else {  // no query rows: nothing flows back
        dq = Tensor::zeros({a.B, a.H, a.S, a.D}, qc.dtype(), dev);
        dk = Tensor::zeros({a.B, a.Hkv, a.T, a.D}, qc.dtype(), dev);
        dv = Tensor::zeros({a.B, a.Hkv, a.T, a.Dv}, qc.dtype(), dev);
      }
      return std::vector<Tensor>{dq, dk, dv};
    });
  }
  return out;
}

}  // namespace sg
