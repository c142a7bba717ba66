// cuda/emu/device_api.h — the CUDA device-side names, for kernel bodies compiled as plain C++.
//
// A kernel in cuda/kernels/*.cuh is one function body that nvcc compiles for the GPU and g++ compiles
// for the CPU emulation (cuda/emu/emu.h runs it). This header gives g++ what nvcc has built in:
//
//   dim3, threadIdx / blockIdx / blockDim / gridDim, warpSize   the lane's coordinates (set per lane)
//   __syncthreads()                                             a block barrier: this lane waits, the others run
//   __shfl_sync / __shfl_xor_sync / __shfl_down_sync / __shfl_up_sync, __ballot_sync / __any_sync / __all_sync
//                                                               warp exchanges: every lane of the warp meets first
//   atomicAdd / atomicMax / atomicMin / atomicExch              plain read-modify-write (lanes never preempt
//                                                               each other, so these are atomic by construction)
//   __fadd_rn / __fsub_rn / __fmul_rn / __fdiv_rn / __fsqrt_rn  f32 arithmetic rounded to nearest (the plain
//                                                               operations; see below for contraction)
//   __syncwarp(mask)                                            a warp barrier: every running lane of the warp meets
//   __global__ __device__ __host__ __forceinline__ __restrict__ qualifiers that mean nothing on the CPU
//   __launch_bounds__(n)                                        (a register-allocation hint for nvcc)
//   __align__(n)                                                the GNU alignment attribute, as CUDA defines it for g++
//   __shared__                                                  `static thread_local`: one copy per kernel
//                                                               instantiation, shared by the block's lanes
//
// Why `__shared__` is `static thread_local`: a block's lanes are fibers on ONE OS thread and its blocks run
// one after another, so a function-local static is exactly one block's shared memory. thread_local keeps two
// emulated launches on two OS threads apart. Unlike the GPU, shared memory keeps the previous block's values
// (uninitialised on the GPU): a kernel that reads shared memory before writing it is wrong on both.
//
// Only the subset our kernels use is here; a kernel that needs more adds it here, visibly.
#pragma once
#if defined(__CUDACC__)
#error "cuda/emu/device_api.h is the CPU emulation of CUDA's built-ins; nvcc has the real ones"
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The running lane's coordinates: the emulator sets them each time it switches to a lane.
extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace sg::emu {
// The scheduler's side of the device calls (cuda/emu/emu.cpp).
void block_barrier();                                  // __syncthreads
// One warp exchange: this lane offers `value` (8 bytes), every lane of `mask` in its warp arrives, then this
// lane reads the value of lane `src_lane` (an index within the warp) — or its own when src is out of range or
// not in the mask. Returns the 8 bytes read; `vote` gets the ballot of the lanes' `predicate`.
uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane, int predicate, unsigned* vote);
int lane_in_warp();                                    // threadIdx linearised, mod 32

template <class T> uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T> T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
}  // namespace sg::emu

inline void __syncthreads() { sg::emu::block_barrier(); }
// A warp exchange that carries nothing: the lanes of the warp wait for each other (those that have finished
// count as arrived, as everywhere in the emulator). On the GPU it also orders the warp's shared-memory accesses;
// here the lanes never run at once, so the meeting is all there is to emulate.
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  sg::emu::warp_exchange(mask, 0, sg::emu::lane_in_warp(), 0, nullptr);
}

// width: the shuffle works within segments of `width` lanes (a power of two <= 32), as on the GPU.
template <class T> T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {
  int lane = sg::emu::lane_in_warp();
  int base = lane & ~(width - 1);
  return sg::emu::from_bits<T>(sg::emu::warp_exchange(mask, sg::emu::to_bits(v), base + (src & (width - 1)), 0, nullptr));
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {
  int lane = sg::emu::lane_in_warp();
  int src = lane ^ lane_mask;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;   // outside the segment: own value
  return sg::emu::from_bits<T>(sg::emu::warp_exchange(mask, sg::emu::to_bits(v), src, 0, nullptr));
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  int lane = sg::emu::lane_in_warp();
  int src = lane + (int)delta;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return sg::emu::from_bits<T>(sg::emu::warp_exchange(mask, sg::emu::to_bits(v), src, 0, nullptr));
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  int lane = sg::emu::lane_in_warp();
  int src = lane - (int)delta;
  if (src < 0 || (src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return sg::emu::from_bits<T>(sg::emu::warp_exchange(mask, sg::emu::to_bits(v), src, 0, nullptr));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  unsigned vote = 0;
  sg::emu::warp_exchange(mask, 0, sg::emu::lane_in_warp(), predicate != 0, &vote);
  return vote;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) { return (__ballot_sync(mask, predicate) & mask) == mask; }

template <class T> T atomicAdd(T* address, T v) {
  T old = *address;
  *address = old + v;
  return old;
}
template <class T> T atomicMax(T* address, T v) {
  T old = *address;
  if (v > old) *address = v;
  return old;
}
template <class T> T atomicMin(T* address, T v) {
  T old = *address;
  if (v < old) *address = v;
  return old;
}
template <class T> T atomicExch(T* address, T v) {
  T old = *address;
  *address = v;
  return old;
}

// CUDA's correctly rounded f32 intrinsics. nvcc never fuses them into an FMA (it fuses a·b + c written plainly,
// -fmad=true), so a kernel that must give the bits of a CPU loop built with -ffp-contract=off spells its
// products and sums with them (cuda/kernels/optim.cuh). Here they are the plain operations; an emulation file
// whose kernels rely on them is built with -ffp-contract=off as well (CMakeLists.txt), so that g++ on a
// target with FMA does not fuse them after inlining either.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
