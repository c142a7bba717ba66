// tests/cuda/test_dispatch_pow_where_cast_emu.cpp — pow, where, masked_fill and to_dtype through the device dispatch
// (ops/kernels.h), under the CUDA emulation: on Device::CUDA tensors they run the CUDA kernels
// (cuda/kernels/elementwise.cuh, cuda/kernels/cast.cuh) in the fiber emulator and give the CPU op's values and
// gradients BIT FOR BIT (tolerance 0), in both lane orders: pow is the same libm call in double on both sides, where
// a select, the cast the shared cast_element functions, and the backward formulas (mul, where, to_dtype) are
// dispatched ops that agree bit for bit too (test_dispatch_emu.cpp). One exception: the gradient of a BROADCAST input
// of where is summed by sum_to, whose CUDA kernel adds f32 lanes in a tree where the CPU adds the row in double, so
// those cases take test_dispatch_reduce_emu.cpp's tolerance kSum (|got - want| <= 1e-4 + 1e-6 |want|; measured
// 2.4e-7 here), and their values are checked bit for bit separately.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tests/cuda/dispatch_checks.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "cuda/emu/emu.h"
#include "ops/fp8.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::dispatch::check_on_cuda_both_orders;
using sg::test::error_of;
using sg::test::dispatch::Tol;
using In = std::vector<Tensor>;

namespace {

Tensor input(const Shape& shape, uint64_t seed, double lo, double hi, bool grad = true, DType dt = DType::f32) {
  Rng rng(seed);
  Tensor t = Tensor::rand(shape, rng, lo, hi, dt);
  if (grad) t.requires_grad_();
  return t;
}

// A 0/1 (and -3) condition of dtype dt, from `seed`, with both values well represented.
Tensor condition(const Shape& shape, uint64_t seed, DType dt) {
  Rng rng(seed);
  Tensor u = Tensor::rand(shape, rng, 0.0, 1.0, DType::f64);
  std::vector<double> v = u.to_f64_vector();
  for (double& x : v) x = x < 0.45 ? 0.0 : x < 0.8 ? 1.0 : -3.0;
  return to_dtype(Tensor::from_vector(v, shape), dt);
}

// A tensor's bytes (any dtype, moved to the host, contiguous).
std::vector<uint8_t> bytes_of(const Tensor& t) {
  Tensor c = t.to(Device::CPU).clone_data();
  std::vector<uint8_t> b((size_t)c.numel() * dtype_size(c.dtype()));
  if (!b.empty()) std::memcpy(b.data(), c.raw_data(), b.size());
  return b;
}

// to_dtype as ops/elementwise.cpp wrote it before the cast kernel: every element read as a double
// (to_f64_vector), then converted by this switch. The kernel must give its bytes.
Tensor former_to_dtype(const Tensor& x, DType dtype) {
  std::vector<double> v = x.to_f64_vector();
  Tensor y = Tensor::empty(x.shape(), dtype);
  for (int64_t i = 0; i < y.numel(); i++) {
    switch (dtype) {
      case DType::f32: y.data<float>()[i] = (float)v[i]; break;
      case DType::f64: y.data<double>()[i] = v[i]; break;
      case DType::i32: y.data<int32_t>()[i] = (int32_t)v[i]; break;
      case DType::i64: y.data<int64_t>()[i] = (int64_t)v[i]; break;
      case DType::bf16: static_cast<uint16_t*>(y.raw_data())[i] = lowp::f32_to_bf16((float)v[i]); break;
      case DType::f16: static_cast<uint16_t*>(y.raw_data())[i] = lowp::f32_to_f16((float)v[i]); break;
      case DType::f8e4m3: y.fp8_codes()[i] = lowp::f32_to_e4m3((float)v[i]); break;
      case DType::f8e5m2: y.fp8_codes()[i] = lowp::f32_to_e5m2((float)v[i]); break;
    }
  }
  return y;
}

const Tol kSum{1e-4, 1e-6};

constexpr DType kAll[] = {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2};

}  // namespace

TEST_CASE("dispatch pow/where/cast emu: pow on CUDA, contiguous and permuted, values and gradients equal the CPU") {
  CudaEmulationScope emu(true);
  for (double p : {3.0, 0.5, -1.5, 2.5, 1.0 / 3.0}) {
    CAPTURE(p);
    const double lo = p == 3.0 ? -1.5 : 0.2;  // a fractional power of a negative base is NaN: positive bases there
    check_on_cuda_both_orders("pow/contiguous", [p](const In& in) { return pow(in[0], p); }, {input({7, 41}, 11, lo, 2.0)});
    check_on_cuda_both_orders("pow/permuted", [p](const In& in) { return pow(permute(in[0], {2, 0, 1}), p); },
                              {input({3, 5, 19}, 12, lo, 2.0)});
  }
  Tensor x = input({300}, 13, 0.5, 1.5, false).to(Device::CUDA);
  Tensor y = pow(x, 1.75);
  CHECK(y.device() == Device::CUDA);
  CHECK(sg::emu::last_launch().kernel == "pow_forward");  // the CUDA kernel, not the CPU loop
  CHECK(bytes_of(y) == bytes_of(pow(x.to(Device::CPU), 1.75)));
}

TEST_CASE("dispatch pow/where/cast emu: where with i64 / i32 / f32 conditions, broadcast and permuted, gradients of a and b") {
  CudaEmulationScope emu(true);
  // cond (1, 13) i64 broadcast over rows, a (7, 13), b (13) broadcast: both gradients go through sum_to.
  check_on_cuda_both_orders("where/broadcast_i64", [](const In& in) { return where(in[0], in[1], in[2]); },
                            {condition({1, 13}, 21, DType::i64), input({7, 13}, 22, -2, 2), input({13}, 23, -2, 2)}, kSum);
  // cond (4, 6, 5) i32 seen permuted, a transposed, b a scalar.
  check_on_cuda_both_orders("where/permuted_i32",
                            [](const In& in) { return where(permute(in[0], {1, 2, 0}), transpose(in[1], 0, 2), in[2]); },
                            {condition({4, 6, 5}, 24, DType::i32), input({4, 5, 6}, 25, -2, 2), input({}, 26, -2, 2)}, kSum);
  // an f32 condition of the full shape (600 elements: three blocks), a (300) broadcast over the rows, b (2, 1).
  check_on_cuda_both_orders("where/f32_cond", [](const In& in) { return where(in[0], in[1], in[2]); },
                            {condition({2, 300}, 27, DType::f32), input({300}, 28, -2, 2), input({2, 1}, 29, -2, 2)}, kSum);
  // The values of those three, bit for bit, in both lane orders (no sum in the forward).
  for (sg::emu::LaneOrder order : {sg::emu::LaneOrder::forward, sg::emu::LaneOrder::reverse}) {
    sg::emu::LaneOrderScope scope(order);
    const Tensor c1 = condition({1, 13}, 21, DType::i64), a1 = input({7, 13}, 22, -2, 2, false), b1 = input({13}, 23, -2, 2, false);
    CHECK(bytes_of(where(c1.to(Device::CUDA), a1.to(Device::CUDA), b1.to(Device::CUDA))) == bytes_of(where(c1, a1, b1)));
    const Tensor c2 = permute(condition({4, 6, 5}, 24, DType::i32), {1, 2, 0});
    const Tensor a2 = transpose(input({4, 5, 6}, 25, -2, 2, false), 0, 2), b2 = input({}, 26, -2, 2, false);
    CHECK(bytes_of(where(c2.to(Device::CUDA), a2.to(Device::CUDA), b2.to(Device::CUDA))) == bytes_of(where(c2, a2, b2)));
    const Tensor c3 = condition({2, 300}, 27, DType::f32), a3 = input({300}, 28, -2, 2, false), b3 = input({2, 1}, 29, -2, 2, false);
    CHECK(bytes_of(where(c3.to(Device::CUDA), a3.to(Device::CUDA), b3.to(Device::CUDA))) == bytes_of(where(c3, a3, b3)));
    CHECK(sg::emu::last_launch().kernel == "where_forward");
    CHECK(sg::emu::last_launch().blocks == 3);   // 600 outputs, 256 a block
  }
  Tensor c = condition({2, 300}, 27, DType::f32).to(Device::CUDA), a = Tensor::ones({300}).to(Device::CUDA);
  // errors: the condition on another device; a condition of a storage dtype; f64 values on CUDA.
  CHECK(error_of([&] { where(c.to(Device::CPU), a, a); }).find("are on different devices (cpu and cuda)") != std::string::npos);
  CHECK(error_of([&] { where(to_dtype(c.to(Device::CPU), DType::bf16).to(Device::CUDA), a, a); }) ==
        "[where] the condition tensor (2, 300) bf16 on cuda must be f32, f64, i32 or i64");
  Tensor ad = Tensor::ones({300}, DType::f64).to(Device::CUDA);
  CHECK(error_of([&] { where(c, ad, ad); }) ==
        "[where] the CUDA backend computes f32; this tensor on cuda is f64 (convert it to f32 on the CPU, then move it)");
}

TEST_CASE("dispatch pow/where/cast emu: masked_fill with a causal mask on CUDA, values and gradients equal the CPU") {
  CudaEmulationScope emu(true);
  std::vector<float> causal(9 * 9);
  for (int i = 0; i < 9; i++)
    for (int j = 0; j < 9; j++) causal[i * 9 + j] = j > i ? 1.0f : 0.0f;
  Tensor mask = Tensor::from_vector(causal, {9, 9});
  check_on_cuda_both_orders("masked_fill/causal", [](const In& in) { return masked_fill(in[0], in[1], -1e9); },
                            {input({2, 3, 9, 9}, 31, -2, 2), mask});
  check_on_cuda_both_orders("masked_fill/i64_row_mask", [](const In& in) { return masked_fill(in[0], in[1], 0.25); },
                            {input({5, 7}, 32, -2, 2), condition({5, 1}, 33, DType::i64)});
  Tensor x = Tensor::ones({2, 9, 9}).to(Device::CUDA);
  CHECK(error_of([&] { masked_fill(x, mask, 0.0); }).find("[masked_fill]") == 0);  // mask on the CPU
}

TEST_CASE("dispatch pow/where/cast emu: to_dtype on CUDA through bf16, f16, E4M3, E5M2 and the integers equals the CPU") {
  CudaEmulationScope emu(true);
  // Round trips f32 -> storage dtype -> f32 (the output is f32, so the check compares values bit for bit; the
  // gradient of the f32 -> f32 side is the identity cast's). Values up to ±600: beyond E4M3's 448 (saturates).
  for (DType mid : {DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2, DType::i32, DType::i64}) {
    CAPTURE(dtype_name(mid));
    check_on_cuda_both_orders("to_dtype/round_trip", [mid](const In& in) { return to_dtype(to_dtype(in[0], mid), DType::f32); },
                              {input({5, 77}, 41, -600, 600, false)});
    check_on_cuda_both_orders("to_dtype/round_trip_permuted",
                              [mid](const In& in) { return to_dtype(to_dtype(transpose(in[0], 0, 1), mid), DType::f32); },
                              {input({6, 45}, 42, -3, 3, false)});
  }
  // Integer sources, and a strided bf16 tensor on the device read in place (the copy kernel moves no 2-byte elements).
  check_on_cuda_both_orders("to_dtype/i64_to_f32", [](const In& in) { return to_dtype(in[0], DType::f32); },
                            {Tensor::from_vector(std::vector<int64_t>{-5, 7, (1LL << 53) + 1, 1LL << 40, 0, -1}, {2, 3})});
  check_on_cuda_both_orders("to_dtype/i32_to_f32_permuted", [](const In& in) { return to_dtype(transpose(in[0], 0, 1), DType::f32); },
                            {Tensor::from_vector(std::vector<int32_t>{16777217, -3, 9, 100000, 0, -77}, {3, 2})});
  check_on_cuda_both_orders("to_dtype/bf16_strided",
                            [](const In& in) { return to_dtype(permute(to_dtype(in[0], DType::bf16), {1, 0}), DType::f32); },
                            {input({9, 33}, 43, -4, 4, false)});
  // The bytes of every storage dtype, from a CUDA f32 tensor with NaN, ±inf, ties and saturating values.
  std::vector<float> v = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 464.0f, 1e6f, 65520.0f, 61440.0f, 1.0f + 0x1p-11f};
  Rng rng(44);
  for (int i = 0; i < 290; i++) v.push_back((float)rng.uniform(-500, 500));
  Tensor xc = Tensor::from_vector(v, {300});
  Tensor xg = xc.to(Device::CUDA);
  for (DType to : {DType::bf16, DType::f16, DType::f8e4m3, DType::f8e5m2}) {
    CAPTURE(dtype_name(to));
    Tensor y = to_dtype(xg, to);
    CHECK(y.device() == Device::CUDA);
    CHECK(y.dtype() == to);
    CHECK(sg::emu::last_launch().kernel == "cast");
    CHECK(bytes_of(y) == bytes_of(to_dtype(xc, to)));
    CHECK(bytes_of(to_dtype(y, DType::f32)) == bytes_of(to_dtype(to_dtype(xc, to), DType::f32)));
  }
  // f64 on either side is refused on CUDA (the CUDA backend computes f32), in the words the registry walk skips.
  CHECK(error_of([&] { to_dtype(xg, DType::f64); }) ==
        "[to_dtype] has no CUDA kernel yet for f64 (the CUDA backend computes f32): convert on the CPU, then move it");
  CHECK(error_of([&] { to_dtype(Tensor::ones({2}, DType::f64).to(Device::CUDA), DType::bf16); }).find("[to_dtype] has no CUDA kernel yet for f64") == 0);
  CHECK(to_dtype(xg, DType::f32).same(xg));
}

TEST_CASE("dispatch pow/where/cast emu: to_dtype on the CPU gives the former per-element loop's bytes for all 56 pairs") {
  // Sources of every dtype, permuted (the kernel reads strides; the former loop read to_f64_vector), values in
  // [-300, 300] so that every integer conversion is defined, plus NaN / inf / ties for the float destinations.
  Rng rng(51);
  std::vector<double> v;
  for (int i = 0; i < 6 * 35; i++) v.push_back(rng.uniform(-300, 300) * (i % 7 == 0 ? 1e-3 : 1.0));
  Tensor base = Tensor::from_vector(v, {6, 35});
  std::vector<double> special = v;
  const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 464.0, 1e300, 1.0 + 0x1p-24, 65520.0, 1.0 + 0x1p-9 + 0x1p-30};
  for (int i = 0; i < 9; i++) special[i * 11] = specials[i];
  Tensor base_special = Tensor::from_vector(special, {6, 35});
  int pairs = 0;
  for (DType from : kAll) {
    for (DType to : kAll) {
      if (from == to) continue;
      CAPTURE(dtype_name(from));
      CAPTURE(dtype_name(to));
      const bool to_int = to == DType::i32 || to == DType::i64, from_int = from == DType::i32 || from == DType::i64;
      Tensor src = permute(to_dtype(to_int || from_int ? base : base_special, from), {1, 0});
      CHECK(bytes_of(to_dtype(src, to)) == bytes_of(former_to_dtype(src, to)));
      pairs++;
    }
  }
  CHECK(pairs == 56);
}
