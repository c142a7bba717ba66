// cuda/emu/emu.h — run a CUDA kernel on the CPU: every block's threads as cooperative fibers on one OS thread.
//
//   sg::emu::launch("saxpy", grid, block, saxpy_kernel, n, a, x, y);
//
// Blocks run one after another. Inside a block each thread ("lane") is a fiber (ucontext) with its own stack;
// a lane runs until it reaches __syncthreads(), a warp exchange (__shfl_*_sync, __ballot_sync) or its end, then
// the next lane in the LANE ORDER runs. A barrier opens when every lane still running has reached it. So a
// student can break in a kernel body in gdb and step a lane as plain C++ (cuda/README.md shows how).
//
// Two lane orders (forward: lane 0 first; reverse: the last lane first, and the blocks in reverse too) give
// the same result for a correct kernel. A kernel that reads shared memory another lane writes without a
// __syncthreads between them, or that races on global memory across blocks, reads different values in the
// two orders: the emulation tests run every kernel in both orders and compare (tests/cuda/).
//
// Errors are exceptions naming the kernel: a barrier no lane can pass (lanes of one warp waiting at different
// exchanges, or at a warp exchange and __syncthreads), a block larger than 1024 threads, a zero-sized grid.
// An exception thrown inside a lane ends the launch and is rethrown by launch() with the kernel's name.
//
// What this is not: a simulator of timing, memory coalescing or occupancy; the lanes never run in parallel,
// so a kernel that relies on two lanes running at once (a spin-wait on another lane's flag) deadlocks here.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "cuda/emu/device_api.h"

namespace sg::emu {

enum class LaneOrder { forward, reverse };
const char* lane_order_name(LaneOrder order);

// The order launches on this OS thread use; forward unless a LaneOrderScope says otherwise.
LaneOrder lane_order();
struct LaneOrderScope {
  explicit LaneOrderScope(LaneOrder order);
  ~LaneOrderScope();
  LaneOrderScope(const LaneOrderScope&) = delete;
  LaneOrderScope& operator=(const LaneOrderScope&) = delete;
  LaneOrder saved;
};

// What the last launch on this OS thread did (the tests and chapter 15 print it).
struct LaunchStats {
  std::string kernel;
  int64_t blocks = 0, threads_per_block = 0;
  int64_t barriers = 0;          // __syncthreads openings, summed over blocks
  int64_t warp_exchanges = 0;    // shuffles and votes, counted once per warp
  int64_t switches = 0;          // fiber switches
};
const LaunchStats& last_launch();

// Runs body() once per lane of every block of `grid` x `block`, with threadIdx etc. set.
void run_grid(const char* kernel_name, dim3 grid, dim3 block, const std::function<void()>& body);

template <class... KernelArgs, class... Args>
void launch(const char* kernel_name, dim3 grid, dim3 block, void (*kernel)(KernelArgs...), Args&&... args) {
  run_grid(kernel_name, grid, block, [&] { kernel(args...); });
}

}  // namespace sg::emu
