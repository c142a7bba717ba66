// tests/cuda/test_indexer_emu.cpp — the lightning-indexer CUDA kernels (cuda/kernels/indexer.cuh), run in the
// CPU emulation in both lane orders, against the CPU kernels on random inputs. Everything is asserted BIT-EQUAL
// (memcmp): the kernels do the CPU loops' operations in the CPU loops' order (the header says why).
//   hadamard_rotate_f32 (vs ops/cpu/hadamard.h) for every n = 1, 2, 4, ..., 4096 (the kernel's limit): fewer
//   butterflies than threads, more (several per thread per pass), in place (x = y); n = 8192 and n = 6 refused;
//   fp8_index_scores_f32 (vs ops/cpu/fp8_index.h, called per sequence) for B = 2 sequences whose keys sit in a
//   cache buffer of key_rows > T rows (the unread rows hold NaN codes, so a read of one would show), D = 8 (one
//   tile), 130 and 300 (two and three tiles, ragged last tile), block 32; S, T, H not multiples of anything; more
//   outputs than one block's threads; H = 0 (zeros); ReLU exercised (some head logits positive, some negative);
//   and the dispatch kernels::fp8_index_scores on the CPU and on emulated CUDA. Argument errors name the kernel.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "autograd/rng.h"
#include "cuda/emu/emu.h"
#include "cuda/indexer.h"
#include "ops/cpu/fp8_index.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/cpu/hadamard.h"
#include "ops/fp8.h"
#include "ops/kernels.h"
#include "tests/cuda/emu_test_util.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;
using sg::test::error_of;
using sg::test::emu::random_values;
using sg::test::emu::same_bits;

namespace {

constexpr LaneOrder kOrders[] = {LaneOrder::forward, LaneOrder::reverse};

// Random E4M3 codes, never NaN (magnitudes 0x01..0x7E, subnormals included, both signs).
std::vector<uint8_t> random_codes(sg::Rng& rng, int64_t n) {
  std::vector<uint8_t> c((size_t)n);
  for (uint8_t& x : c) {
    const uint8_t mag = (uint8_t)(1 + rng.randint(126));
    x = rng.uniform() < 0.5 ? mag : (uint8_t)(mag | 0x80u);
  }
  return c;
}

// Positive scales: powers of two (ue8m0) or any f32 in the same range.
std::vector<float> random_scales(sg::Rng& rng, int64_t n, bool pow2) {
  std::vector<float> s((size_t)n);
  for (float& x : s) {
    const double e = rng.uniform(-10.0, -4.0);
    x = (float)std::exp2(pow2 ? std::ceil(e) : e);
  }
  return s;
}

struct IndexCase {
  int64_t B, S, H, D, T, key_rows, block;
  bool pow2_scales;
};

struct IndexInputs {
  std::vector<uint8_t> qc, kc;
  std::vector<float> qs, w, ks;
};

IndexInputs make_inputs(const IndexCase& c, uint64_t seed) {
  sg::Rng rng(seed);
  const int64_t nb = sg::cpu::fp8_num_blocks(c.D, c.block);
  IndexInputs in;
  in.qc = random_codes(rng, c.B * c.S * c.H * c.D);
  in.qs = random_scales(rng, c.B * c.S * c.H * nb, c.pow2_scales);
  in.w = random_values(c.B * c.S * c.H, seed + 1, -1.0, 1.0);
  in.kc = random_codes(rng, c.B * c.key_rows * c.D);
  in.ks = random_scales(rng, c.B * c.key_rows * nb, c.pow2_scales);
  // Rows [T, key_rows) of each sequence are not the kernel's: NaN codes and scales, which would poison a score.
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t t = c.T; t < c.key_rows; t++) {
      for (int64_t d = 0; d < c.D; d++) in.kc[(b * c.key_rows + t) * c.D + d] = 0x7F;
      for (int64_t j = 0; j < nb; j++) in.ks[(b * c.key_rows + t) * nb + j] = NAN;
    }
  return in;
}

sg::Fp8IndexScoresArgs args_of(const IndexCase& c, IndexInputs& in, std::vector<float>& out) {
  sg::Fp8IndexScoresArgs a;
  a.q_codes = in.qc.data();
  a.q_scales = in.qs.data();
  a.weights = in.w.data();
  a.k_codes = in.kc.data();
  a.k_scales = in.ks.data();
  a.scores = out.data();
  a.B = c.B;
  a.S = c.S;
  a.H = c.H;
  a.D = c.D;
  a.T = c.T;
  a.key_rows = c.key_rows;
  a.block = c.block;
  return a;
}

// The CPU kernel, one sequence at a time (as models/dsa.cpp calls it).
std::vector<float> cpu_scores(const IndexCase& c, const IndexInputs& in) {
  const int64_t nb = sg::cpu::fp8_num_blocks(c.D, c.block);
  std::vector<float> out((size_t)(c.B * c.S * c.T), -1.0f);
  for (int64_t b = 0; b < c.B; b++)
    // data() + offset, not &v[offset]: with H = 0 or S = 0 a vector is empty and v[0] is undefined (UBSan).
    sg::cpu::fp8_index_scores_f32(in.qc.data() + b * c.S * c.H * c.D, in.qs.data() + b * c.S * c.H * nb,
                                  in.w.data() + b * c.S * c.H, in.kc.data() + b * c.key_rows * c.D,
                                  in.ks.data() + b * c.key_rows * nb, c.S, c.H, c.D, c.T, c.block,
                                  out.data() + b * c.S * c.T);
  return out;
}

}  // namespace

TEST_CASE("indexer emu: hadamard_rotate_f32 equals the CPU butterfly bit for bit, n = 1 ... 4096, in place too") {
  for (int64_t n = 1; n <= 4096; n *= 2) {
    const int64_t rows = n >= 1024 ? 2 : 5;
    const std::vector<float> x = random_values(rows * n, 100 + n, -3.0, 3.0);
    std::vector<float> want(x.size());
    sg::cpu::hadamard_rotate_f32(x.data(), rows, n, want.data());
    for (LaneOrder order : kOrders) {
      CAPTURE(n);
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> got(x.size(), NAN);
      sg::cuda_emu::hadamard_rotate_f32({rows, n, x.data(), got.data()});
      CHECK(same_bits(got, want));
      std::vector<float> inplace = x;
      sg::cuda_emu::hadamard_rotate_f32({rows, n, inplace.data(), inplace.data()});
      CHECK(same_bits(inplace, want));
    }
  }
  // More rows than the grid's 4096 blocks: the blocks stride over rows (n = 2, one lane order: the lanes' order
  // is checked above).
  {
    const int64_t rows = 4096 + 3, n = 2;
    const std::vector<float> x = random_values(rows * n, 9, -3.0, 3.0);
    std::vector<float> want(x.size()), got(x.size(), NAN);
    sg::cpu::hadamard_rotate_f32(x.data(), rows, n, want.data());
    sg::cuda_emu::hadamard_rotate_f32({rows, n, x.data(), got.data()});
    CHECK(same_bits(got, want));
  }
  // The rotation is orthonormal: it keeps a row's norm (a check of the CPU reference itself, within f32 rounding).
  {
    const std::vector<float> x = random_values(256, 7, -1.0, 1.0);
    std::vector<float> y(256);
    sg::cuda_emu::hadamard_rotate_f32({1, 256, x.data(), y.data()});
    double nx = 0, ny = 0;
    for (int i = 0; i < 256; i++) nx += (double)x[i] * x[i], ny += (double)y[i] * y[i];
    CHECK(std::abs(nx - ny) <= 1e-5 * nx);
  }
  // rows == 0 launches nothing; errors name the kernel.
  sg::cuda_emu::hadamard_rotate_f32({0, 8, nullptr, nullptr});
  std::vector<float> big(8192, 1.0f);
  CHECK(error_of([&] { sg::cuda_emu::hadamard_rotate_f32({1, 8192, big.data(), big.data()}); }) ==
        "[cuda] hadamard_rotate_f32: n = 8192 is over this kernel's limit of 4096 (one row in a block's shared memory)");
  CHECK(error_of([&] { sg::cuda_emu::hadamard_rotate_f32({1, 6, big.data(), big.data()}); }) ==
        "[cuda] hadamard_rotate_f32: need rows >= 0 and n a power of two, got rows 1, n 6");
}

TEST_CASE("indexer emu: fp8_index_scores_f32 equals the CPU kernel bit for bit (cache buffers, several tiles)") {
  const IndexCase cases[] = {
      {2, 3, 5, 8, 7, 11, 128, false},    // one tile; keys in a buffer of 11 rows, 7 read
      {2, 3, 5, 130, 7, 9, 128, true},    // two tiles, the second 2 wide; ue8m0 scales
      {1, 2, 3, 300, 5, 5, 128, false},   // three tiles, the last 44 wide; key_rows == T
      {2, 2, 3, 100, 6, 8, 32, false},    // block 32: four tiles, the last 4 wide
      {2, 3, 2, 8, 150, 160, 128, false}, // 900 outputs: 8 blocks of 128 threads, the last partial
      {2, 3, 0, 8, 4, 4, 128, false},     // H = 0: every score 0
      {2, 0, 4, 8, 4, 4, 128, false},     // S = 0: nothing to write
  };
  int case_no = 0;
  for (const IndexCase& c : cases) {
    CAPTURE(case_no);
    IndexInputs in = make_inputs(c, 1000 + case_no++);
    const std::vector<float> want = cpu_scores(c, in);
    for (float v : want) REQUIRE(!std::isnan(v));  // the CPU reads rows [0, T) only, too
    if (c.H > 0 && c.S > 0) {
      // the ReLU is exercised: some scores are sums of fewer than H heads (measured on the CPU, per head below)
      int64_t positive = 0, total = 0;
      const int64_t nb = sg::cpu::fp8_num_blocks(c.D, c.block);
      for (int64_t b = 0; b < c.B; b++)
        for (int64_t s = 0; s < c.S; s++)
          for (int64_t h = 0; h < c.H; h++)
            for (int64_t t = 0; t < c.T; t++) {
              double logit = 0;
              for (int64_t j = 0; j < nb; j++) {
                double dot = 0;
                for (int64_t d = j * c.block; d < std::min(c.D, (j + 1) * c.block); d++)
                  dot += (double)sg::lowp::e4m3_to_f32(in.qc[((b * c.S + s) * c.H + h) * c.D + d]) *
                         sg::lowp::e4m3_to_f32(in.kc[(b * c.key_rows + t) * c.D + d]);
                logit += dot * in.qs[((b * c.S + s) * c.H + h) * nb + j] * in.ks[(b * c.key_rows + t) * nb + j];
              }
              positive += logit > 0;
              total++;
            }
      CHECK(positive > 0);
      CHECK(positive < total);
    }
    for (LaneOrder order : kOrders) {
      CAPTURE(sg::emu::lane_order_name(order));
      sg::emu::LaneOrderScope scope(order);
      std::vector<float> got(want.size(), -1.0f);
      sg::cuda_emu::fp8_index_scores_f32(args_of(c, in, got));
      CHECK(same_bits(got, want));
    }
  }
}

TEST_CASE("indexer emu: kernels::fp8_index_scores on the CPU and on emulated CUDA, and the kernel's errors") {
  const IndexCase c{3, 4, 3, 136, 9, 12, 128, false};
  IndexInputs in = make_inputs(c, 77);
  const std::vector<float> want = cpu_scores(c, in);
  std::vector<float> on_cpu(want.size(), -1.0f), on_cuda(want.size(), -1.0f);
  sg::kernels::fp8_index_scores("fp8_index_scores", sg::Device::CPU, args_of(c, in, on_cpu));
  CHECK(same_bits(on_cpu, want));
  {
    sg::CudaEmulationScope emu(true);  // CUDA "device memory" is host memory: the same buffers serve
    sg::kernels::fp8_index_scores("fp8_index_scores", sg::Device::CUDA, args_of(c, in, on_cuda));
  }
  CHECK(same_bits(on_cuda, want));

  std::vector<float> out(want.size());
  sg::Fp8IndexScoresArgs a = args_of(c, in, out);
  a.key_rows = 8;
  CHECK(error_of([&] { sg::cuda_emu::fp8_index_scores_f32(a); }) ==
        "[cuda] fp8_index_scores_f32: key_rows = 8 (rows per sequence in k) is less than T = 9");
  CHECK(error_of([&] { sg::kernels::fp8_index_scores("idx", sg::Device::CPU, a); }).find("[idx] fp8_index_scores: need") == 0);
  a = args_of(c, in, out);
  a.D = 0;
  CHECK(error_of([&] { sg::cuda_emu::fp8_index_scores_f32(a); }).find("[cuda] fp8_index_scores_f32: need B, S, H, T >= 0 "
                                                                    "and D, block >= 1, got B 3, S 4, H 3, D 0") == 0);
}
