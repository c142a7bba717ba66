// tests/autograd/test_overflow.cpp — shape and byte-size arithmetic that would wrap around (autograd/checked.h):
//   * shape_numel / contiguous_strides / Tensor::empty of shapes whose product does not fit in int64 throw
//     std::overflow_error naming the shape, where they used to return a wrapped (small) size and hand out a
//     64-byte buffer for 2^64 elements; a shape with a 0 has 0 elements whatever the other dims;
//   * a byte count over size_t (2^62 f64 = 2^65 bytes), and one the OS cannot give (2^60 bytes), are named;
//   * allocator_size_class near SIZE_MAX throws at once: its doubling loop never ended past 2^63;
//   * reshape into a shape whose product wraps to exactly the element count is refused;
//   * fp8_num_blocks is exact up to INT64_MAX (n + block - 1 overflowed) and refuses block < 1 (was a SIGFPE).
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "autograd/allocator.h"
#include "autograd/tensor.h"
#include "ops/cpu/fp8_quant.h"
#include "ops/shape.h"
#include "tests/test_util.h"

using namespace sg;
using sg::test::contains;

namespace {

constexpr int64_t k2p62 = int64_t(1) << 62;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// The message of the std::overflow_error `f` throws; any other outcome fails the check.
template <class F>
std::string overflow_message(F&& f) {
  try {
    f();
  } catch (const std::overflow_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw something other than std::overflow_error: " << e.what());
    return e.what();
  }
  FAIL_CHECK("did not throw");
  return "";
}

}  // namespace

TEST_CASE("overflow: shape_numel, contiguous_strides and Tensor::empty name a shape whose size wraps around") {
  std::string e = overflow_message([] { shape_numel({k2p62, 4}); });
  CHECK_MESSAGE(contains(e, "[numel] shape (4611686018427387904, 4): the number of elements overflows int64"), e);
  e = overflow_message([] { shape_numel({kMax, kMax}); });
  CHECK_MESSAGE(contains(e, "(9223372036854775807, 9223372036854775807)"), e);
  // A 0 anywhere: 0 elements, even when the other dims' product overflows on the way.
  CHECK(shape_numel({0, kMax, kMax}) == 0);
  CHECK(shape_numel({kMax, kMax, 0}) == 0);
  CHECK(shape_numel({kMax}) == kMax);

  // (2, 2^62, 4): the stride of dim 0 is 2^64. The last dim's size never enters a stride.
  e = overflow_message([] { contiguous_strides({2, k2p62, 4}); });
  CHECK_MESSAGE(contains(e, "[strides] shape (2, 4611686018427387904, 4): the stride of dim 0 overflows int64"), e);
  CHECK(contiguous_strides({1, kMax}) == Shape{kMax, 1});

  // The product wraps to 0 (2^62 · 4 = 2^64): Tensor::empty used to make a 64-byte tensor of that shape.
  e = overflow_message([] { Tensor::empty({k2p62, 4}); });
  CHECK_MESSAGE(contains(e, "[numel] shape (4611686018427387904, 4)"), e);
  e = overflow_message([] { Tensor::zeros({1 << 20, 1 << 20, 1 << 20, 1 << 20}); });
  CHECK_MESSAGE(contains(e, "[numel] shape (1048576, 1048576, 1048576, 1048576)"), e);
  // 2^62 elements fit in int64, but 2^62 f64 are 2^65 bytes.
  e = overflow_message([] { Tensor::empty({k2p62}, DType::f64); });
  CHECK_MESSAGE(contains(e, "[nbytes] shape (4611686018427387904) of f64: 4611686018427387904 * 8 overflows size_t"), e);
  // A 0-element tensor with a huge other dim is fine (a 1-element buffer, as for every empty tensor).
  Tensor z = Tensor::empty({0, k2p62});
  CHECK(z.numel() == 0);
  CHECK(z.shape() == Shape{0, k2p62});
}

TEST_CASE("overflow: an allocation the OS refuses names the tensor instead of a bare std::bad_alloc") {
  // 2^58 f32 = 2^60 bytes (1 EiB): more than any address space, so no overcommit setting grants it.
  const AllocatorStats before = cpu_allocator_stats();
  const std::string e = sg::test::error_of([] { Tensor::empty({int64_t(1) << 58}); });
  CHECK_MESSAGE(contains(e, "[empty] cannot allocate 1152921504606846976 bytes for shape (288230376151711744) f32 on cpu"), e);
  CHECK(cpu_allocator_stats().allocated_bytes == before.allocated_bytes);  // the failed block is not counted
}

TEST_CASE("overflow: allocator_size_class is exact below 2^64 and throws at once where rounding up would wrap") {
  // The classes themselves (64-byte steps to 256, then a quarter of the power of two below).
  CHECK(allocator_size_class(0) == 64);
  CHECK(allocator_size_class(257) == 320);
  CHECK(allocator_size_class(1000) == 1024);
  CHECK(allocator_size_class(1025) == 1280);
  CHECK(allocator_size_class(size_t(1) << 40) == size_t(1) << 40);
  // Past 2^63 the old loop doubled pow2 to 0 and never ended; now these are one bit_floor each.
  const size_t p63 = size_t(1) << 63;
  CHECK(allocator_size_class(p63) == p63);
  CHECK(allocator_size_class(p63 + 1) == p63 + (p63 >> 2));
  CHECK(allocator_size_class(p63 + (p63 >> 1) + (p63 >> 2)) == p63 + (p63 >> 1) + (p63 >> 2));  // the top class
  const size_t top = std::numeric_limits<size_t>::max();
  for (size_t n : {top, top - 5, p63 + (p63 >> 1) + (p63 >> 2) + 1}) {
    const std::string e = overflow_message([n] { allocator_size_class(n); });
    CHECK_MESSAGE(contains(e, "[allocator] " + std::to_string(n) + " bytes: no size class (rounding up overflows size_t)"), e);
  }
}

TEST_CASE("overflow: reshape refuses a shape whose element count wraps around to the tensor's") {
  Tensor x = Tensor::zeros({12});
  // (2^62 + 3) · 4 = 2^64 + 12, which wrapped to exactly 12: the view used to be made, every read out of bounds.
  const std::string e = sg::test::error_of([&] { reshape(x, {k2p62 + 3, 4}); });
  CHECK_MESSAGE(contains(e, "into (4611686018427387907, 4): its element count overflows int64"), e);
  CHECK(reshape(x, {3, -1}).shape() == Shape{3, 4});
  CHECK(reshape(Tensor::zeros({0}), {0, k2p62}).shape() == Shape{0, k2p62});  // a 0: no overflow, 0 elements
}

TEST_CASE("overflow: fp8_num_blocks is ceil(n / block) up to INT64_MAX") {
  CHECK(cpu::fp8_num_blocks(0, 128) == 0);
  CHECK(cpu::fp8_num_blocks(256, 128) == 2);
  CHECK(cpu::fp8_num_blocks(257, 128) == 3);
  CHECK(cpu::fp8_num_blocks(kMax, 128) == int64_t(1) << 56);  // (2^63 - 1) / 2^7 rounded up; n + 127 overflowed
  CHECK(cpu::fp8_num_blocks(kMax, kMax) == 1);
  CHECK(cpu::fp8_num_blocks(kMax - 1, kMax) == 1);
  CHECK(cpu::fp8_num_blocks(128, kMax) == 1);
  const std::string e = sg::test::error_of([] { cpu::fp8_num_blocks(5, 0); });
  CHECK_MESSAGE(contains(e, "fp8_num_blocks: need non-negative sizes and block >= 1"), e);
}
