// ops/kernels.h — THE device dispatch: one function per primitive kernel, each with one visible `switch (device)`
// that picks the backend's kernel. Forwards and backwards (and backward()'s gradient accumulation) call these;
// nothing else in ops/ names sg::cpu:: / sg::cuda:: / sg::cuda_emu:: kernels for a dispatched family.
//
//   switch (device) {
//     case Device::CPU:   cpu::<kernel>(...)                    the CPU kernels (ops/cpu/), f32 and f64
//     case Device::CUDA:  cuda_emulation() ? cuda_emu::<kernel>(args)    the CUDA kernels stepped on the CPU
//                                          : cuda::<kernel>(args)        (autograd/device.h), or on the GPU;
//                                                                        f32 only: f64 is refused by the op's name
//     case Device::Metal: error "[op] no Metal backend in this build"
//   }
//
// `op` is the name errors carry ("silu", "add", "backward"): the op that asked, not the kernel.
//
// RECIPE — dispatching the next kernel family <family> (the elementwise family below is the worked example):
//   1. Its kernels' arguments are the ABI structs of ops/kernel_abi/<family>.h; its CUDA host functions are
//      declared in cuda/<family>.h for sg::cuda and sg::cuda_emu (cuda/README.md).
//   2. Here: include ops/kernel_abi/<family>.h and declare, per kernel, under a `// ---- <family>` heading,
//        template <class T> void <kernel>(const char* op, Device d, const <Kernel>Args<T>& a);
//      In kernels.cpp: include cuda/<family>.h and ops/cpu/<family>.h; the switch above (copy unary_forward:
//      the CPU case unpacks the struct into the cpu:: kernel's arguments, the CUDA case is `if constexpr` f32);
//      explicit instantiations for float and double at the end. A kernel with no f64 CPU version (or an index
//      dtype) instantiates what it has.
//   3. In the op (ops/<family>.cpp), forward and backward alike:
//        - checks: check_same_device(op, a, b) for every pair of tensor inputs (instead of check_cpu);
//        - outputs and gradients on the input's device: Tensor::empty(shape, dtype, x.device());
//        - pointers from x.device_data<T>() (memory of x's device), never x.data<T>() (host only);
//        - kernels::<kernel><T>(op, x.device(), args) inside dispatch_float.
//      Whatever the op calls besides its kernel (contiguous, sum_to, ...) must be dispatched too, or the op
//      refuses a CUDA tensor by that callee's name.
//   4. Tests: tests/cuda/test_dispatch_emu.cpp style — the op on a CUDA tensor under CudaEmulationScope equals the
//      op on the CPU (values and gradients), in both lane orders; tests/cuda/test_devices_gpu.cpp runs the same on
//      a GPU when there is one.
// Ops not dispatched yet keep check_cpu(op, t): "[matmul] has no CUDA kernel yet; x (2, 3) f32 on cuda".
//
// What this is not: a registry or a code generator. One function and one switch per kernel, read top to bottom.
#pragma once
#include "autograd/device.h"
#include "ops/kernel_abi/elementwise.h"

namespace sg::kernels {

// ---- elementwise (ops/kernel_abi/elementwise.h; CPU ops/cpu/elementwise.h; CUDA cuda/elementwise.h) -----------
template <class T> void unary_forward(const char* op, Device d, const UnaryArgs<T>& a);            // y = f(x)
template <class T> void unary_backward(const char* op, Device d, const UnaryBackwardArgs<T>& a);   // dx = f'(x) dy
template <class T> void binary_forward(const char* op, Device d, const BinaryArgs<T>& a);          // out = a (op) b
template <class T> void affine_forward(const char* op, Device d, const AffineArgs<T>& a);          // y = alpha x + beta

}  // namespace sg::kernels
