// ops/fp8_linear.cpp — see ops/fp8_linear.h.
#include "ops/fp8_linear.h"

#include <string>

#include "autograd/node.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/dispatch.h"
#include "ops/kernels.h"
#include "ops/shape.h"

namespace sg {

namespace {

// A contiguous 2-D f32 tensor (on its device), or a named error.
Tensor as_f32_matrix(const char* op, const Tensor& t, const char* role) {
  check_defined(op, t, role);
  if (t.dtype() != DType::f32)
    op_error(op, std::string(role) + " " + t.describe() + " must be f32 (FP8 GEMMs read f32 activations; got " +
                     dtype_name(t.dtype()) + ")");
  if (t.dim() != 2) op_error(op, std::string(role) + " " + t.describe() + " must be 2-D");
  return contiguous(t);
}

void check_block(const char* op, int64_t block) {
  if (block < 1) op_error(op, "block must be >= 1, got " + std::to_string(block));
}

Fp8Tensor empty_fp8(int64_t rows, int64_t cols, int64_t block, int64_t scale_rows, Device device) {
  Fp8Tensor q;
  q.block = block;
  q.scale_rows = scale_rows;
  q.codes = Tensor::empty({rows, cols}, DType::f8e4m3, device);
  q.scale = Tensor::empty({cpu::fp8_num_blocks(rows, scale_rows), cpu::fp8_num_blocks(cols, block)}, DType::f32, device);
  return q;
}

// The E4M3 codes of q in the memory of their device (Tensor::fp8_codes is the host's view).
uint8_t* codes_of(const Tensor& codes) { return static_cast<uint8_t*>(codes.raw_device_data()); }

}  // namespace

Fp8Tensor fp8_quantize_tiles(const Tensor& x, bool ue8m0, int64_t block) {
  check_block("fp8_quantize_tiles", block);
  Tensor xc = as_f32_matrix("fp8_quantize_tiles", x, "x");
  Fp8Tensor q = empty_fp8(xc.size(0), xc.size(1), block, 1, xc.device());
  kernels::act_quant("fp8_quantize_tiles", xc.device(),
                     {xc.device_data<float>(), xc.size(0), xc.size(1), block, ue8m0 ? 1 : 0, codes_of(q.codes),
                      q.scale.device_data<float>()});
  return q;
}

Fp8Tensor fp8_quantize_blocks(const Tensor& w, int64_t block) {
  check_block("fp8_quantize_blocks", block);
  Tensor wc = as_f32_matrix("fp8_quantize_blocks", w, "w");
  Fp8Tensor q = empty_fp8(wc.size(0), wc.size(1), block, block, wc.device());
  kernels::weight_quant("fp8_quantize_blocks", wc.device(),
                        {wc.device_data<float>(), wc.size(0), wc.size(1), block, codes_of(q.codes), q.scale.device_data<float>()});
  return q;
}

Fp8Tensor fp8_weight(const Tensor& codes, const Tensor& scale_inv, const std::string& what, int64_t block) {
  const char* op = "fp8_weight";
  check_block(op, block);
  check_defined(op, codes, "codes");
  check_defined(op, scale_inv, "scale_inv");
  if (codes.dtype() != DType::f8e4m3 || codes.dim() != 2)
    op_error(op, what + ": codes " + codes.describe() + " must be a 2-D f8e4m3 tensor");
  if (scale_inv.dtype() != DType::f32)
    op_error(op, what + ": scale_inv " + scale_inv.describe() + " must be f32");
  check_same_device(op, codes, scale_inv);
  const Shape want = {cpu::fp8_num_blocks(codes.size(0), block), cpu::fp8_num_blocks(codes.size(1), block)};
  if (scale_inv.shape() != want)
    op_error(op, what + ": scale_inv " + scale_inv.describe() + " does not match codes " + codes.describe() + ": " +
                     std::to_string(block) + "x" + std::to_string(block) + " blocks need " + shape_str(want));
  Fp8Tensor q;
  q.codes = codes.is_contiguous() ? codes : codes.clone_data();
  q.scale = scale_inv.is_contiguous() ? scale_inv : scale_inv.clone_data();
  q.block = block;
  q.scale_rows = block;
  return q;
}

Tensor fp8_dequantize(const Fp8Tensor& q) {
  const Device dev = q.codes.device();
  check_same_device("fp8_dequantize", q.codes, q.scale);
  Tensor out = Tensor::empty({q.rows(), q.cols()}, DType::f32, dev);
  if (q.scale_rows == 1)
    kernels::act_dequant("fp8_dequantize", dev,
                         {codes_of(q.codes), q.scale.device_data<float>(), q.rows(), q.cols(), q.block, out.device_data<float>()});
  else
    kernels::weight_dequant("fp8_dequantize", dev,
                            {codes_of(q.codes), q.scale.device_data<float>(), q.rows(), q.cols(), q.block, out.device_data<float>()});
  return out;
}

Fp8Tensor fp8_transpose_blocks(const Fp8Tensor& q) {
  if (q.scale_rows != q.block) op_error("fp8_transpose_blocks", "needs block scales (scale_rows == block), got tiles");
  const Device dev = q.codes.device();
  if (dev != Device::CPU) {
    // No device kernel moves 1-byte elements (the copy kernel's words are 4 bytes): the codes and scales go to the
    // host, are transposed there, and come back. Exact; it costs two copies of the weight per call on a GPU.
    Fp8Tensor host = q;
    host.codes = q.codes.to(Device::CPU);
    host.scale = q.scale.to(Device::CPU);
    Fp8Tensor t = fp8_transpose_blocks(host);
    t.codes = t.codes.to(dev);
    t.scale = t.scale.to(dev);
    return t;
  }
  const int64_t R = q.rows(), C = q.cols();
  Fp8Tensor t = empty_fp8(C, R, q.block, q.block, Device::CPU);
  const uint8_t* src = q.codes.fp8_codes();
  uint8_t* dst = t.codes.fp8_codes();
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++) dst[c * R + r] = src[r * C + c];
  const int64_t SR = q.scale.size(0), SC = q.scale.size(1);
  const float* s = q.scale.data<float>();
  float* d = t.scale.data<float>();
  for (int64_t i = 0; i < SR; i++)
    for (int64_t j = 0; j < SC; j++) d[j * SR + i] = s[i * SC + j];
  return t;
}

Tensor fp8_matmul(const Fp8Tensor& a, const Fp8Tensor& b, cpu::Fp8Accumulation accumulation) {
  const char* op = "fp8_matmul";
  if (a.cols() != b.cols())
    op_error(op, "a " + a.codes.describe() + " and b " + b.codes.describe() + " must share the contracted (last) dim");
  if (a.block != b.block)
    op_error(op, "a has K blocks of " + std::to_string(a.block) + " but b of " + std::to_string(b.block));
  check_same_device(op, a.codes, b.codes);
  check_same_device(op, a.codes, a.scale);
  check_same_device(op, b.codes, b.scale);
  const Device dev = a.codes.device();
  Tensor c = Tensor::empty({a.rows(), b.rows()}, DType::f32, dev);
  Fp8GemmArgs g;
  g.a = codes_of(a.codes);
  g.a_scale = a.scale.device_data<float>();
  g.b = codes_of(b.codes);
  g.b_scale = b.scale.device_data<float>();
  g.c = c.device_data<float>();
  g.M = a.rows(), g.N = b.rows(), g.K = a.cols();
  g.block = a.block;
  g.a_scale_rows = a.scale_rows;
  g.b_scale_rows = b.scale_rows;
  g.accumulation = accumulation;
  kernels::fp8_gemm(op, dev, g);
  return c;
}

// ---- the FP8 linear ------------------------------------------------------------------------------

namespace {

// dx [M,K] = dy [M,N] · W [N,K]: dy in 1×128 tiles along N, Wᵀ [K,N] in blocks.
Tensor fp8_dgrad(const Tensor& dy2, const Fp8Tensor& w_t, const Fp8LinearOptions& o) {
  return fp8_matmul(fp8_quantize_tiles(dy2, o.ue8m0, o.block), w_t);
}

// dW [N,K] = dyᵀ [N,M] · x [M,K]: both re-quantized in 1×128 tiles along the token axis M.
Tensor fp8_wgrad(const Tensor& dy2, const Fp8Tensor& x_saved, const Fp8LinearOptions& o) {
  Tensor dy_t = contiguous(transpose(dy2, 0, 1));                      // [N, M]
  Tensor x_t = contiguous(transpose(fp8_dequantize(x_saved), 0, 1));  // [K, M]
  return fp8_matmul(fp8_quantize_tiles(dy_t, o.ue8m0, o.block), fp8_quantize_tiles(x_t, o.ue8m0, o.block));
}

void check_linear_shapes(const char* op, const Tensor& x, const Shape& w_shape, const std::string& w_desc) {
  check_defined(op, x, "x");
  if (x.dim() < 1 || x.size(-1) != w_shape[1])
    op_error(op, "x " + x.describe() + " has last dim " + (x.dim() ? std::to_string(x.size(-1)) : "-") +
                     " but weight " + w_desc + " expects in = " + std::to_string(w_shape[1]));
  if (x.dtype() != DType::f32) op_error(op, "x " + x.describe() + " must be f32, got " + dtype_name(x.dtype()));
}

// Shared by both linears: y = x·Wᵀ from an FP8 weight, with the node (when wanted) that runs Dgrad
// (and, when `master` is given, Wgrad) in FP8.
Tensor fp8_linear_impl(const char* op, const Tensor& x, const Fp8Tensor& wq, const Tensor* master,
                       const Fp8LinearOptions& o) {
  Shape out_shape = x.shape();
  out_shape.back() = wq.rows();
  Tensor x2 = reshape(x.detach(), {-1, wq.cols()});
  Fp8Tensor xq = fp8_quantize_tiles(x2, o.ue8m0, o.block);
  Tensor y = reshape(fp8_matmul(xq, wq), out_shape);
  std::vector<Tensor> inputs = {x};
  if (master) inputs.push_back(*master);
  if (needs_grad(inputs)) {
    const bool want_dx = x.requires_grad(), want_dw = master && master->requires_grad(), has_master = master;
    const int64_t n_out = wq.rows();
    const Shape x_shape = x.shape();
    Fp8Tensor w_t = want_dx ? fp8_transpose_blocks(wq) : Fp8Tensor{};  // only Dgrad reads Wᵀ
    // Saved for backward: x as its FP8 codes + tile scales (1 byte / element), Wᵀ's codes + block scales.
    record(op, y, inputs, [xq, w_t, o, want_dx, want_dw, has_master, n_out, x_shape](const Tensor& dy) {
      Tensor dy2 = contiguous(reshape(dy, {-1, n_out}));
      std::vector<Tensor> g(has_master ? 2 : 1);
      if (want_dx) g[0] = reshape(fp8_dgrad(dy2, w_t, o), x_shape);
      if (want_dw) g[1] = fp8_wgrad(dy2, xq, o);
      return g;
    });
  }
  return y;
}

}  // namespace

Tensor fp8_linear(const Tensor& x, const Tensor& weight, const Fp8LinearOptions& options) {
  const char* op = "fp8_linear";
  check_defined(op, weight, "weight");
  if (weight.dim() != 2) op_error(op, "weight " + weight.describe() + " must be 2-D [out, in]");
  check_linear_shapes(op, x, weight.shape(), weight.describe());
  Fp8Tensor wq = fp8_quantize_blocks(weight.detach(), options.block);
  return fp8_linear_impl(op, x, wq, &weight, options);
}

Tensor fp8_linear_stored(const Tensor& x, const Tensor& weight_codes, const Tensor& weight_scale_inv,
                         const Fp8LinearOptions& options) {
  const char* op = "fp8_linear_stored";
  Fp8Tensor wq = fp8_weight(weight_codes, weight_scale_inv, weight_codes.name().empty() ? "weight" : weight_codes.name(),
                            options.block);
  check_linear_shapes(op, x, weight_codes.shape(), weight_codes.describe());
  return fp8_linear_impl(op, x, wq, nullptr, options);
}

}  // namespace sg
