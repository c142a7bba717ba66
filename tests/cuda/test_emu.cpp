// tests/cuda/test_emu.cpp — the CUDA emulator itself (cuda/emu/emu.h): lanes, blocks, barriers, warp exchanges,
// the two lane orders, and the errors. The kernels here are written exactly as CUDA kernels are.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "cuda/emu/emu.h"
#include "tests/test_util.h"

using sg::emu::LaneOrder;
using sg::emu::LaneOrderScope;

namespace {

// Every thread writes its global linear index where its coordinates say: a 3-D grid of 3-D blocks.
__global__ void coordinates_kernel(int* out) {
  const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int threads = blockDim.x * blockDim.y * blockDim.z;
  out[bid * threads + tid] += bid * threads + tid + 1;
}

// The tree sum of a block in shared memory: 64 threads, one barrier per level.
constexpr int kSumBlock = 64;
__global__ void block_sum_kernel(const float* x, float* sums) {
  __shared__ float partial[kSumBlock];
  const int t = threadIdx.x;
  partial[t] = x[blockIdx.x * kSumBlock + t];
  __syncthreads();
  for (int stride = kSumBlock / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) sums[blockIdx.x] = partial[0];
}

// The same sum with the barriers forgotten: a lane reads partial[t + stride] before its owner wrote it,
// in one lane order or the other.
__global__ void block_sum_no_sync_kernel(const float* x, float* sums) {
  __shared__ float partial[kSumBlock];
  const int t = threadIdx.x;
  partial[t] = x[blockIdx.x * kSumBlock + t];
  for (int stride = kSumBlock / 2; stride > 0; stride /= 2)
    if (t < stride) partial[t] += partial[t + stride];
  if (t == 0) sums[blockIdx.x] = partial[0];
}

// Warp sums two ways (butterfly and down-shift), and a ballot of the odd lanes.
__global__ void warp_kernel(const float* x, float* xor_sums, float* down_sums, unsigned* ballots) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float v = x[threadIdx.x], w = v;
  for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
  for (int d = 16; d > 0; d /= 2) w += __shfl_down_sync(0xffffffffu, w, d);
  const unsigned b = __ballot_sync(0xffffffffu, lane % 2 == 1);
  xor_sums[threadIdx.x] = v;
  if (lane == 0) {
    down_sums[warp] = w;
    ballots[warp] = b;
  }
}

// Half a warp at __syncthreads, the other half at a shuffle: no barrier can open.
__global__ void stuck_kernel(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void throwing_kernel(int* out) {
  if (threadIdx.x == 5) throw std::runtime_error("lane 5 gave up");
  out[threadIdx.x] = 1;
}

std::vector<float> ramp(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; i++) v[i] = 0.25f * (float)((i * 37) % 101) - 7.0f;
  return v;
}

}  // namespace

TEST_CASE("cuda emu: every thread of a 3-D grid of 3-D blocks runs once with its own coordinates") {
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    LaneOrderScope scope(order);
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    std::vector<int> out(12 * 24, 0);
    sg::emu::launch("coordinates", grid, block, coordinates_kernel, out.data());
    for (int i = 0; i < (int)out.size(); i++) REQUIRE(out[i] == i + 1);
    CHECK(sg::emu::last_launch().blocks == 12);
    CHECK(sg::emu::last_launch().threads_per_block == 24);
  }
}

TEST_CASE("cuda emu: a shared-memory tree sum with barriers is right in both lane orders") {
  const int blocks = 5;
  std::vector<float> x = ramp(blocks * kSumBlock);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    LaneOrderScope scope(order);
    std::vector<float> sums(blocks, -1.0f);
    sg::emu::launch("block_sum", dim3(blocks), dim3(kSumBlock), block_sum_kernel, x.data(), sums.data());
    for (int b = 0; b < blocks; b++) {
      double want = 0;
      for (int t = 0; t < kSumBlock; t++) want += x[b * kSumBlock + t];
      CHECK(sums[b] == doctest::Approx(want).epsilon(1e-6));
    }
    // one barrier after the load, one per level (6 levels), per block
    CHECK(sg::emu::last_launch().barriers == blocks * 7);
  }
}

TEST_CASE("cuda emu: a missing __syncthreads shows up as a difference between the lane orders") {
  const int blocks = 3;
  std::vector<float> x = ramp(blocks * kSumBlock);
  std::vector<float> fwd(blocks), rev(blocks), right(blocks);
  {
    LaneOrderScope scope(LaneOrder::forward);
    sg::emu::launch("block_sum_no_sync", dim3(blocks), dim3(kSumBlock), block_sum_no_sync_kernel, x.data(), fwd.data());
    sg::emu::launch("block_sum", dim3(blocks), dim3(kSumBlock), block_sum_kernel, x.data(), right.data());
  }
  {
    LaneOrderScope scope(LaneOrder::reverse);
    sg::emu::launch("block_sum_no_sync", dim3(blocks), dim3(kSumBlock), block_sum_no_sync_kernel, x.data(), rev.data());
  }
  bool differs = false, one_wrong = false;
  for (int b = 0; b < blocks; b++) {
    differs |= fwd[b] != rev[b];
    one_wrong |= fwd[b] != right[b] || rev[b] != right[b];
  }
  CHECK(differs);
  CHECK(one_wrong);
}

TEST_CASE("cuda emu: warp shuffles and ballots give each lane what the GPU gives it") {
  const int threads = 96;   // three warps
  std::vector<float> x = ramp(threads);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    LaneOrderScope scope(order);
    std::vector<float> xor_sums(threads), down_sums(3);
    std::vector<unsigned> ballots(3);
    sg::emu::launch("warp", dim3(1), dim3(threads), warp_kernel, x.data(), xor_sums.data(), down_sums.data(), ballots.data());
    for (int w = 0; w < 3; w++) {
      double want = 0;
      for (int l = 0; l < 32; l++) want += x[w * 32 + l];
      for (int l = 0; l < 32; l++) CHECK(xor_sums[w * 32 + l] == doctest::Approx(want).epsilon(1e-6));
      CHECK(down_sums[w] == doctest::Approx(want).epsilon(1e-6));
      CHECK(ballots[w] == 0xaaaaaaaau);
    }
    // 5 butterfly + 5 down + 1 ballot exchanges per warp
    CHECK(sg::emu::last_launch().warp_exchanges == 3 * 11);
  }
}

TEST_CASE("cuda emu: errors name the kernel — oversized block, empty grid, a stuck barrier, a lane that throws") {
  std::vector<float> out(64);
  std::vector<int> iout(64);
  CHECK(sg::test::error_of([&] { sg::emu::launch("stuck", dim3(1), dim3(2048), stuck_kernel, out.data()); }) ==
        "[cuda emu] stuck: a block of 2048 threads (2048 x 1 x 1); CUDA allows 1 to 1024");
  CHECK(sg::test::error_of([&] { sg::emu::launch("stuck", dim3(0), dim3(32), stuck_kernel, out.data()); }) ==
        "[cuda emu] stuck: an empty grid");
  const std::string stuck = sg::test::error_of([&] { sg::emu::launch("stuck", dim3(1), dim3(32), stuck_kernel, out.data()); });
  CHECK(stuck.find("[cuda emu] stuck: block (0, 0, 0) is stuck: no barrier can open (thread 0 at __syncthreads") == 0);
  CHECK(stuck.find("at a warp exchange") == std::string::npos);   // the first 8 shown are the barrier's
  CHECK(sg::test::error_of([&] { sg::emu::launch("throwing", dim3(2), dim3(32), throwing_kernel, iout.data()); }) ==
        "[cuda emu] throwing: lane 5 gave up");
  // the emulator is usable again after each error
  std::vector<int> coords(8, 0);
  sg::emu::launch("coordinates", dim3(2), dim3(4), coordinates_kernel, coords.data());
  for (int i = 0; i < 8; i++) CHECK(coords[i] == i + 1);
}

// The rounded f32 intrinsics (__fadd_rn & co.): one correctly rounded operation each, as on the GPU.
__global__ void rounded_ops_kernel(const float* a, const float* b, float* out) {
  const int i = threadIdx.x;
  out[5 * i + 0] = __fadd_rn(a[i], b[i]);
  out[5 * i + 1] = __fsub_rn(a[i], b[i]);
  out[5 * i + 2] = __fmul_rn(a[i], b[i]);
  out[5 * i + 3] = __fdiv_rn(a[i], b[i]);
  out[5 * i + 4] = __fsqrt_rn(b[i]);
}

TEST_CASE("cuda emu: the rounded f32 intrinsics are the IEEE operations") {
  const std::vector<float> a = {1.0f, -3.5f, 1e-30f, 7.0f}, b = {3.0f, 0.1f, 1e-10f, 2.0f};
  std::vector<float> out(20);
  sg::emu::launch("rounded_ops", dim3(1), dim3(4), rounded_ops_kernel, a.data(), b.data(), out.data());
  for (int i = 0; i < 4; i++) {
    CHECK(out[5 * i + 0] == a[i] + b[i]);
    CHECK(out[5 * i + 1] == a[i] - b[i]);
    CHECK(out[5 * i + 2] == a[i] * b[i]);
    CHECK(out[5 * i + 3] == a[i] / b[i]);
    CHECK(out[5 * i + 4] == std::sqrt(b[i]));
  }
  CHECK(out[3] == 1.0f / 3.0f);
  CHECK(out[19] == 1.41421353816986083984375f);  // sqrt(2) rounded to nearest f32
}

// __syncwarp: each lane writes its slot of shared memory, the warp meets, then each reads its neighbour's slot
// within the warp (without the meeting, the lane that runs first would read an unwritten slot in one order).
// The array is __align__(32), as wmma tiles must be (cuda/emu/wmma.h checks it).
__global__ void syncwarp_rotate_kernel(const float* x, float* out, unsigned* misaligned) {
  __shared__ __align__(32) float slots[64];
  const int t = threadIdx.x, lane = t % 32;
  slots[t] = x[blockIdx.x * 64 + t] + 1000.0f * (float)blockIdx.x;
  __syncwarp();
  out[blockIdx.x * 64 + t] = slots[t - lane + (lane + 1) % 32];
  if (t == 0) misaligned[blockIdx.x] = (unsigned)(reinterpret_cast<uintptr_t>(&slots[0]) % 32);
}

// Half a warp at __syncwarp, the other half at __syncthreads: no barrier can open.
__global__ void syncwarp_stuck_kernel(float* out) {
  if (threadIdx.x < 16) __syncwarp();
  else __syncthreads();
  out[threadIdx.x] = 1.0f;
}

TEST_CASE("cuda emu: __syncwarp meets the warp in both lane orders; __align__ aligns shared memory") {
  const std::vector<float> x = ramp(128);
  for (LaneOrder order : {LaneOrder::forward, LaneOrder::reverse}) {
    CAPTURE(sg::emu::lane_order_name(order));
    LaneOrderScope scope(order);
    std::vector<float> out(128, -1.0f);
    std::vector<unsigned> misaligned(2, 99);
    sg::emu::launch("syncwarp_rotate", dim3(2), dim3(64), syncwarp_rotate_kernel, x.data(), out.data(), misaligned.data());
    for (int b = 0; b < 2; b++)
      for (int t = 0; t < 64; t++) {
        const int lane = t % 32, src = t - lane + (lane + 1) % 32;
        REQUIRE(out[b * 64 + t] == x[b * 64 + src] + 1000.0f * (float)b);
      }
    CHECK(misaligned[0] == 0);
    CHECK(misaligned[1] == 0);
    CHECK(sg::emu::last_launch().warp_exchanges == 2 * 2);   // 2 blocks × 2 warps, one meeting each
  }
  std::vector<float> out(32);
  const std::string stuck =
      sg::test::error_of([&] { sg::emu::launch("syncwarp_stuck", dim3(1), dim3(32), syncwarp_stuck_kernel, out.data()); });
  CHECK(stuck.find("[cuda emu] syncwarp_stuck: block (0, 0, 0) is stuck: no barrier can open") == 0);
}
