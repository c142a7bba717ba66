// tests/autograd/test_devices.cpp — devices in the engine: storage per device and its pool, to(Device) and the
// differentiable to_device, reading and writing rules for tensors off the CPU, backward's seeds and gradients on
// the root's / tensor's device, and the errors (device mismatch, ops not dispatched yet, Metal, a build with no
// CUDA, a tensor from the other CUDA pool). Device::CUDA here is the CUDA EMULATION (host memory, the CUDA
// kernels stepped on the CPU: autograd/device.h) — no GPU is involved; tests/cuda/test_devices_gpu.cpp runs the
// shared checks on a real one.
#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "tests/cuda/device_checks.h"

#include "autograd/allocator.h"
#include "autograd/device.h"
#include "cuda/cuda_backend.h"
#include "ops/ops.h"

using namespace sg;
using sg::test::error_of;

TEST_CASE("devices: the CUDA emulation switch is visible, scoped and restored") {
  const bool before = cuda_emulation();
  {
    CudaEmulationScope on(true);
    CHECK(cuda_emulation());
    CHECK(memory_pool_for(Device::CUDA) == MemoryPool::cuda_emu);
    {
      CudaEmulationScope off(false);
      CHECK(!cuda_emulation());
      CHECK(memory_pool_for(Device::CUDA) == MemoryPool::cuda);
    }
    CHECK(cuda_emulation());
  }
  CHECK(cuda_emulation() == before);
  CHECK(memory_pool_for(Device::CPU) == MemoryPool::cpu);
  CHECK(std::string(memory_pool_name(MemoryPool::cuda_emu)) == "cuda (emulated)");
}

TEST_CASE("devices: to(CUDA) and back round-trips values, views, dtypes (emulation)") {
  CudaEmulationScope emu(true);
  sg::test::devices::check_round_trip();
  Tensor x = Tensor::ones({2, 2}, DType::f32, Device::CUDA);
  CHECK(x.impl()->storage->pool == MemoryPool::cuda_emu);
  CHECK(x.impl()->storage->device == Device::CUDA);
}

TEST_CASE("devices: the CUDA pool has its own cache and statistics (emulation)") {
  CudaEmulationScope emu(true);
  const AllocatorStats real0 = allocator_stats(MemoryPool::cuda);
  sg::test::devices::check_cuda_pool_stats();
  const AllocatorStats real1 = allocator_stats(MemoryPool::cuda);  // the real device pool was never asked
  CHECK(real1.n_allocs == real0.n_allocs);
  CHECK(real1.allocated_bytes == real0.allocated_bytes);
}

TEST_CASE("devices: to_device is differentiable; gradients land on the tensor's device (emulation)") {
  CudaEmulationScope emu(true);
  sg::test::devices::check_to_device_grad(0.0);
  // The tape names the move.
  Tensor p = Tensor::ones({2}).requires_grad_();
  Tensor y = to_device(p, Device::CUDA);
  CHECK(y.grad_fn()->op == "to_device");
}

TEST_CASE("devices: host code reads a CUDA tensor through a copy and cannot write it (emulation)") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).to(Device::CUDA);
  x.set_name("x");
  CHECK(x.to_f32_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(x.at({1, 2}) == 6.0);
  CHECK(error_of([&] { x.set_at({0, 0}, 1.0); }) ==
        "[set_at] x (2, 3) f32 on cuda is not in host memory: host code cannot write it (set the values on a CPU "
        "tensor, then copy it with to(Device::CUDA))");
  CHECK(error_of([&] { (void)x.data<float>(); }) ==
        "[data] x (2, 3) f32 on cuda is not in host memory: host code reads it with to(Device::CPU) (kernels take "
        "device_data())");
  CHECK(error_of([&] { (void)x.raw_data(); }).find("[data] x (2, 3) f32 on cuda is not in host memory") == 0);
  CHECK(x.device_data<float>() != nullptr);
  CHECK(error_of([&] { (void)x.device_data<double>(); }) == "[data] x (2, 3) f32 on cuda read as f64");
}

TEST_CASE("devices: binary ops refuse inputs on different devices, naming the op, tensors and devices") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::ones({2, 3}).to(Device::CUDA);
  x.set_name("x");
  Tensor y = Tensor::ones({2, 3});
  y.set_name("y");
  CHECK(error_of([&] { add(x, y); }) ==
        "[add] x (2, 3) f32 on cuda and y (2, 3) f32 are on different devices (cuda and cpu); move one with to_device");
  CHECK(error_of([&] { div(y, x); }) ==
        "[div] y (2, 3) f32 and x (2, 3) f32 on cuda are on different devices (cpu and cuda); move one with to_device");
  CHECK(error_of([&] { (void)(x * y); }).find("[mul] x (2, 3) f32 on cuda and y (2, 3) f32 are on different devices") == 0);
}

TEST_CASE("devices: ops without a CUDA kernel yet refuse a CUDA tensor by the op's name") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::ones({2, 3}).to(Device::CUDA);
  x.set_name("x");
  Tensor w = Tensor::ones({3, 4});
  CHECK(error_of([&] { to_dtype(x, DType::f64); }) ==
        "[to_dtype] has no CUDA kernel yet for f64 (the CUDA backend computes f32): convert on the CPU, then move it");
  CHECK(error_of([&] { where(Tensor::ones({2, 3}), x, x); }) ==
        "[where] tensor (2, 3) f32 and x (2, 3) f32 on cuda are on different devices (cpu and cuda); move one with to_device");
  // An op whose kernels are dispatched, handed tensors on two devices, names both.
  CHECK(error_of([&] { matmul(x, w); }).find("are on different devices (cuda and cpu)") != std::string::npos);
  // to_dtype to the dtype a tensor has is the tensor itself, on any device.
  CHECK(to_dtype(x, DType::f32).same(x));
}

TEST_CASE("devices: backward seeds on the root's device and refuses a gradient from another device") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::full({2, 3}, 0.5, DType::f32, Device::CUDA).requires_grad_();
  Tensor y = exp(x);
  y.set_name("y");
  Tensor cpu_grad = Tensor::ones({2, 3});
  CHECK(error_of([&] { y.backward(cpu_grad); }) ==
        "[backward] gradient tensor (2, 3) f32 and y (2, 3) f32 on cuda are on different devices (cpu and cuda): pass "
        "the gradient on the root's device");
  y.backward(Tensor::ones({2, 3}, DType::f32, Device::CUDA));
  CHECK(x.grad().device() == Device::CUDA);
  CHECK(x.grad().to_f32_vector() == std::vector<float>(6, std::exp(0.5f)));

  // A leaf root is its own gradient: the ones are made on its device.
  Tensor s = Tensor::full({1}, 2.0, DType::f32, Device::CUDA).requires_grad_();
  s.backward();
  CHECK(s.grad().device() == Device::CUDA);
  CHECK(s.grad().item() == 1.0);

  // A backward function that returns its gradient on the wrong device is named by the sweep.
  Tensor a = Tensor::ones({2}).to(Device::CUDA).requires_grad_();
  a.set_name("a");
  Tensor b = Tensor::empty({2}, DType::f32, Device::CUDA);
  record("bad_move", b, {a}, [](const Tensor& dy) { return std::vector<Tensor>{dy.to(Device::CPU)}; });
  CHECK(error_of([&] { b.backward(Tensor::ones({2}, DType::f32, Device::CUDA)); }) ==
        "[backward] bad_move produced a gradient on cpu for input 0 a (2) f32 on cuda: gradients accumulate on their "
        "tensor's device");
}

TEST_CASE("devices: the anomaly check and the backward trace read gradients on a device") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::full({3}, -1.0, DType::f32, Device::CUDA).requires_grad_();
  AnomalyGuard anomaly;
  CHECK(error_of([&] { sqrt(x); }).find("[anomaly] forward of sqrt produced NaN at flat index 0") == 0);
  std::ostringstream trace;
  {
    TraceGuard guard(&trace);
    exp(x).backward(Tensor::full({3}, 2.0, DType::f32, Device::CUDA));
  }
  INFO(trace.str());
  CHECK(trace.str().find("norm 3.4641e+00  min 2.0000e+00") != std::string::npos);  // the seed at exp: |(2, 2, 2)| = 3.4641
}

TEST_CASE("devices: f64 on CUDA is refused by the op's name (the CUDA backend computes f32)") {
  CudaEmulationScope emu(true);
  Tensor x = Tensor::ones({4}, DType::f64, Device::CUDA);
  CHECK(x.to_f64_vector() == std::vector<double>(4, 1.0));  // storage and copies take any dtype
  CHECK(error_of([&] { silu(x); }) ==
        "[silu] the CUDA backend computes f32; this tensor on cuda is f64 (convert it to f32 on the CPU, then move it)");
  CHECK(error_of([&] { add(x, x); }).find("[add] the CUDA backend computes f32") == 0);
  CHECK(error_of([&] { mul(x, 2.0); }).find("[mul_scalar] the CUDA backend computes f32") == 0);
}

TEST_CASE("devices: Metal has no backend in this build") {
  CHECK(error_of([] { Tensor::empty({2}, DType::f32, Device::Metal); }) == "[metal] no Metal backend in this build");
  CHECK(error_of([] { Tensor::ones({2}).to(Device::Metal); }) == "[metal] no Metal backend in this build");
}

TEST_CASE("devices: without the emulation, a build with no CUDA says so on to(CUDA)") {
  CudaEmulationScope off(false);
  if (sg::cuda::available()) return;  // a GPU is here: tests/cuda/test_devices_gpu.cpp uses it
  const AllocatorStats s0 = allocator_stats(MemoryPool::cuda);
  const std::string err = error_of([] { Tensor::ones({2, 3}).to(Device::CUDA); });
#ifndef SEEKGRAD_HAS_CUDA
  CHECK(err == "[cuda] this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)");
  CHECK(error_of([] { Tensor::zeros({2}, DType::f32, Device::CUDA); }) ==
        "[cuda] this build has no CUDA backend (configure with -DSEEKGRAD_CUDA=ON)");
#else
  CHECK(err.find("[cuda] cudaMalloc") == 0);  // built with CUDA, no device here
#endif
  const AllocatorStats s1 = allocator_stats(MemoryPool::cuda);  // a failed allocation counts nothing
  CHECK(s1.n_allocs == s0.n_allocs);
  CHECK(s1.allocated_bytes == s0.allocated_bytes);
}

TEST_CASE("devices: a tensor from the emulated pool outlives the switch: read, freed, refused by kernels") {
  const AllocatorStats e0 = allocator_stats(MemoryPool::cuda_emu);
  Tensor x;
  {
    CudaEmulationScope emu(true);
    x = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).to(Device::CUDA);
    x.set_name("x");
  }
  CudaEmulationScope off(false);
  CHECK(x.to_f32_vector() == std::vector<float>{1, 2, 3});  // a memcpy from the pool it lives in
  CHECK(error_of([&] { (void)x.device_data<float>(); }) ==
        "[device_data] x (3) f32 on cuda lives in cuda (emulated) memory, but cuda kernels now run on cuda memory (was "
        "the CUDA emulation switched since it was made?)");
  CHECK(allocator_stats(MemoryPool::cuda_emu).allocated_bytes == e0.allocated_bytes + 64);
  x = Tensor();
  CHECK(allocator_stats(MemoryPool::cuda_emu).allocated_bytes == e0.allocated_bytes);  // back to its own pool
}
