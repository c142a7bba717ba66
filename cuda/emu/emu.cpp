// cuda/emu/emu.cpp — the fiber scheduler behind sg::emu::launch (cuda/emu/emu.h has the model).
//
// One BlockRun per block: a fiber per lane, each with its own mmap'd stack (a guard page below it, so an overflow
// faults instead of writing over a neighbour). The scheduler sweeps the lanes in the lane order,
// running each runnable lane until it blocks; when none can run it opens what can be opened: a warp whose
// running lanes all wait at an exchange, else the block barrier when every running lane waits at it.
#include "cuda/emu/emu.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

// ---- the fiber switch ------------------------------------------------------------------------------------------
// A fiber is a stack and the place it stopped. On x86-64 the switch is the six callee-saved registers pushed on the
// old stack, the stack pointer swapped, the new fiber's registers popped (sg_emu_switch below: 14 instructions, no
// system call). glibc's swapcontext also saves and restores the signal mask — a system call per switch, half the
// emulator's time — which the lanes never change. Other targets use swapcontext. The lanes never touch the x87 /
// SSE control words, so they are not switched.
#if defined(__x86_64__) && defined(__linux__)
#define SG_EMU_ASM_SWITCH 1
// sg_emu_switch(save, to): saves this fiber's stack pointer in *save, continues the fiber whose is `to`.
extern "C" void sg_emu_switch(void** save, void* to);
asm(R"(
  .text
  .p2align 4
  .globl sg_emu_switch
  .type sg_emu_switch, @function
sg_emu_switch:
  .cfi_startproc
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size sg_emu_switch, .-sg_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");
#else
#define SG_EMU_ASM_SWITCH 0
#endif

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace sg::emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxThreadsPerBlock = 1024;

enum class LaneState { runnable, at_barrier, at_exchange, done };

// Where a suspended fiber (a lane, or the scheduler) resumes.
struct FiberContext {
#if SG_EMU_ASM_SWITCH
  void* sp = nullptr;  // its stack pointer, the saved registers on top (sg_emu_switch)
#else
  ucontext_t uc;
#endif
};

// Stops the running fiber (its place saved in `from`) and continues the one `to` holds.
void fiber_switch(FiberContext& from, FiberContext& to) {
#if SG_EMU_ASM_SWITCH
  sg_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
}

// A fresh fiber on [stack, stack + bytes) that starts in entry(), which must never return.
[[gnu::noinline]] void fiber_make(FiberContext& c, char* stack, size_t bytes, void (*entry)()) {
#if SG_EMU_ASM_SWITCH
  // As if entry had been called and then switched away at once: from the 16-byte-aligned top down, a 0 return
  // address (entry's caller: a backtrace ends there), entry's address (sg_emu_switch's `ret` jumps to it, leaving
  // the stack pointer 8 below a 16-byte boundary as at any function entry), and the six registers it pops.
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<void**>(top);
  *--slot = nullptr;
  *--slot = reinterpret_cast<void*>(entry);
  for (int i = 0; i < 6; i++) *--slot = nullptr;
  c.sp = slot;
#else
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
#endif
}

struct Lane {
  FiberContext context;
  LaneState state = LaneState::runnable;
  dim3 thread_idx;
  int linear = 0;
  // the exchange this lane waits at
  unsigned mask = 0;
  uint64_t offer = 0;
  int src_lane = 0;
  int predicate = 0;
  uint64_t result = 0;
  unsigned vote = 0;
  char* stack = nullptr;
  void* asan_fake_stack = nullptr;
};

// Lane stacks, kept per OS thread between launches (mmap is slow next to a small kernel).
struct StackPool {
  std::vector<char*> stacks;   // each: one guard page, then kStackBytes
  size_t page = 4096;
  StackPool() { page = (size_t)sysconf(_SC_PAGESIZE); }
  ~StackPool() {
    for (char* s : stacks) munmap(s, page + kStackBytes);
  }
  char* stack(size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, page + kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("[cuda emu] cannot map a lane stack");
      mprotect(p, page, PROT_NONE);
      stacks.push_back(static_cast<char*>(p));
    }
    return stacks[i] + page;
  }
};

struct BlockRun {
  const char* kernel = "";
  const std::function<void()>* body = nullptr;
  std::vector<Lane> lanes;
  FiberContext scheduler;
  int current = -1;
  std::exception_ptr error;
  LaunchStats* stats = nullptr;
  // the scheduler's stack, as AddressSanitizer needs to hear of it (asan_leaving / asan_arrived)
  void* asan_fake_stack = nullptr;
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_bytes = 0;
};

// AddressSanitizer (the `sanitize` preset) tracks one stack per thread; each fiber switch tells it which stack
// we go to (leaving) and, once there, that we arrived. Without ASan these do nothing.
void asan_leaving(void** fake_stack_save, const void* to_stack, size_t to_bytes) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake_stack_save, to_stack, to_bytes);
#endif
}
void asan_arrived(void* fake_stack, const void** from_stack, size_t* from_bytes) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, from_stack, from_bytes);
#endif
}

thread_local BlockRun* t_run = nullptr;
thread_local LaneOrder t_order = LaneOrder::forward;
thread_local LaunchStats t_stats;
thread_local StackPool t_stacks;

// A lane's whole life: the kernel body, then back to the scheduler for good.
void lane_entry() {
  BlockRun* run = t_run;
  asan_arrived(nullptr, &run->scheduler_stack, &run->scheduler_stack_bytes);
  try {
    (*run->body)();
  } catch (...) {
    if (!run->error) run->error = std::current_exception();
  }
  run->lanes[run->current].state = LaneState::done;
  asan_leaving(nullptr, run->scheduler_stack, run->scheduler_stack_bytes);   // nullptr: this fiber ends
  fiber_switch(run->lanes[run->current].context, run->scheduler);
}

void switch_to(BlockRun& run, int lane) {
  run.current = lane;
  threadIdx = run.lanes[lane].thread_idx;
  run.stats->switches++;
  asan_leaving(&run.asan_fake_stack, run.lanes[lane].stack, kStackBytes);
  fiber_switch(run.scheduler, run.lanes[lane].context);
  asan_arrived(run.asan_fake_stack, nullptr, nullptr);
  run.current = -1;
}

// Back to the scheduler from inside a lane, in `state`.
void block_current(LaneState state) {
  BlockRun* run = t_run;
  if (!run || run->current < 0) throw std::runtime_error("[cuda emu] a device function was called outside a launch");
  Lane& me = run->lanes[run->current];
  me.state = state;
  asan_leaving(&me.asan_fake_stack, run->scheduler_stack, run->scheduler_stack_bytes);
  fiber_switch(me.context, run->scheduler);
  asan_arrived(me.asan_fake_stack, &run->scheduler_stack, &run->scheduler_stack_bytes);
  threadIdx = me.thread_idx;   // resumed: this lane's coordinates again
}

const char* state_name(LaneState s) {
  switch (s) {
    case LaneState::runnable: return "runnable";
    case LaneState::at_barrier: return "at __syncthreads";
    case LaneState::at_exchange: return "at a warp exchange";
    case LaneState::done: return "finished";
  }
  return "?";
}

// Opens every warp whose running lanes all wait at an exchange. Returns whether one opened.
bool open_warps(BlockRun& run) {
  bool opened = false;
  const int n = (int)run.lanes.size();
  for (int w0 = 0; w0 < n; w0 += 32) {
    const int w1 = std::min(n, w0 + 32);
    bool any_waiting = false, all_waiting = true;
    for (int i = w0; i < w1; i++) {
      LaneState s = run.lanes[i].state;
      if (s == LaneState::at_exchange) any_waiting = true;
      else if (s != LaneState::done) all_waiting = false;
    }
    if (!any_waiting || !all_waiting) continue;
    for (int i = w0; i < w1; i++) {
      Lane& l = run.lanes[i];
      if (l.state != LaneState::at_exchange) continue;
      unsigned vote = 0;
      for (int j = w0; j < w1; j++) {
        const Lane& o = run.lanes[j];
        if (o.state == LaneState::at_exchange && (l.mask >> (j - w0) & 1u) && o.predicate) vote |= 1u << (j - w0);
      }
      const int src = w0 + l.src_lane;
      const bool src_ok = l.src_lane >= 0 && src < w1 && run.lanes[src].state == LaneState::at_exchange &&
                          (l.mask >> l.src_lane & 1u);
      l.result = src_ok ? run.lanes[src].offer : l.offer;
      l.vote = vote;
    }
    for (int i = w0; i < w1; i++)
      if (run.lanes[i].state == LaneState::at_exchange) run.lanes[i].state = LaneState::runnable;
    run.stats->warp_exchanges++;
    opened = true;
  }
  return opened;
}

bool open_barrier(BlockRun& run) {
  bool any = false;
  for (const Lane& l : run.lanes) {
    if (l.state == LaneState::at_barrier) any = true;
    else if (l.state != LaneState::done) return false;
  }
  if (!any) return false;
  for (Lane& l : run.lanes)
    if (l.state == LaneState::at_barrier) l.state = LaneState::runnable;
  run.stats->barriers++;
  return true;
}

std::string describe_lanes(const BlockRun& run) {
  std::string s;
  int shown = 0;
  for (const Lane& l : run.lanes) {
    if (l.state == LaneState::done) continue;
    if (shown++ == 8) {
      s += ", ...";
      break;
    }
    s += (s.empty() ? "" : ", ") + std::string("thread ") + std::to_string(l.linear) + " " + state_name(l.state);
  }
  return s;
}

// A fresh fiber for `lane` that starts in lane_entry on `stack` (fiber_make is its own function: getcontext may not
// sit in a loop whose variables it could clobber).
void init_lane(Lane& lane, char* stack) {
  lane.state = LaneState::runnable;
  lane.stack = stack;
  lane.asan_fake_stack = nullptr;
  fiber_make(lane.context, stack, kStackBytes, lane_entry);
}

void run_block(BlockRun& run, const std::vector<int>& order) {
  for (size_t i = 0; i < run.lanes.size(); i++) init_lane(run.lanes[i], t_stacks.stack(i));
  for (;;) {
    bool ran = false;
    for (int i : order) {
      if (run.lanes[i].state != LaneState::runnable) continue;
      switch_to(run, i);
      ran = true;
      if (run.error) return;   // a lane threw: the launch ends (the other lanes' stacks are abandoned)
    }
    if (ran) continue;
    if (std::all_of(run.lanes.begin(), run.lanes.end(), [](const Lane& l) { return l.state == LaneState::done; }))
      return;
    if (open_warps(run) || open_barrier(run)) continue;
    throw std::runtime_error(std::string("[cuda emu] ") + run.kernel + ": block (" + std::to_string(blockIdx.x) +
                             ", " + std::to_string(blockIdx.y) + ", " + std::to_string(blockIdx.z) +
                             ") is stuck: no barrier can open (" + describe_lanes(run) + ")");
  }
}

}  // namespace

const char* lane_order_name(LaneOrder order) { return order == LaneOrder::forward ? "forward" : "reverse"; }
LaneOrder lane_order() { return t_order; }
LaneOrderScope::LaneOrderScope(LaneOrder order) : saved(t_order) { t_order = order; }
LaneOrderScope::~LaneOrderScope() { t_order = saved; }
const LaunchStats& last_launch() { return t_stats; }

void block_barrier() { block_current(LaneState::at_barrier); }

int lane_in_warp() {
  if (!t_run || t_run->current < 0) throw std::runtime_error("[cuda emu] a warp function was called outside a launch");
  return t_run->lanes[t_run->current].linear % 32;
}

uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane, int predicate, unsigned* vote) {
  BlockRun* run = t_run;
  if (!run || run->current < 0) throw std::runtime_error("[cuda emu] a warp function was called outside a launch");
  Lane& me = run->lanes[run->current];
  me.mask = mask;
  me.offer = value;
  me.src_lane = src_lane;
  me.predicate = predicate;
  block_current(LaneState::at_exchange);
  if (vote) *vote = me.vote;
  return me.result;
}

void run_grid(const char* kernel_name, dim3 grid, dim3 block, const std::function<void()>& body) {
  const int64_t threads = (int64_t)block.x * block.y * block.z;
  const int64_t blocks = (int64_t)grid.x * grid.y * grid.z;
  if (threads <= 0 || threads > kMaxThreadsPerBlock)
    throw std::runtime_error(std::string("[cuda emu] ") + kernel_name + ": a block of " + std::to_string(threads) +
                             " threads (" + std::to_string(block.x) + " x " + std::to_string(block.y) + " x " +
                             std::to_string(block.z) + "); CUDA allows 1 to 1024");
  if (blocks <= 0) throw std::runtime_error(std::string("[cuda emu] ") + kernel_name + ": an empty grid");
  if (t_run) throw std::runtime_error(std::string("[cuda emu] ") + kernel_name + ": launched from inside a kernel");

  t_stats = LaunchStats{};
  t_stats.kernel = kernel_name;
  t_stats.blocks = blocks;
  t_stats.threads_per_block = threads;

  BlockRun run;
  run.kernel = kernel_name;
  run.body = &body;
  run.stats = &t_stats;
  run.lanes.resize((size_t)threads);
  for (int64_t t = 0; t < threads; t++) {
    Lane& l = run.lanes[(size_t)t];
    l.linear = (int)t;
    l.thread_idx = dim3((unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / ((int64_t)block.x * block.y)));
  }
  std::vector<int> order((size_t)threads);
  for (int64_t t = 0; t < threads; t++) order[(size_t)t] = (int)(t_order == LaneOrder::forward ? t : threads - 1 - t);

  const dim3 saved_thread = threadIdx, saved_block = blockIdx, saved_dim = blockDim, saved_grid = gridDim;
  gridDim = grid;
  blockDim = block;
  t_run = &run;
  try {
    for (int64_t b = 0; b < blocks; b++) {
      const int64_t bi = t_order == LaneOrder::forward ? b : blocks - 1 - b;
      blockIdx = dim3((unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y), (unsigned)(bi / ((int64_t)grid.x * grid.y)));
      run_block(run, order);
      if (run.error) break;
    }
  } catch (...) {
    t_run = nullptr;
    threadIdx = saved_thread, blockIdx = saved_block, blockDim = saved_dim, gridDim = saved_grid;
    throw;
  }
  t_run = nullptr;
  threadIdx = saved_thread, blockIdx = saved_block, blockDim = saved_dim, gridDim = saved_grid;
  if (run.error) {
    try {
      std::rethrow_exception(run.error);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("[cuda emu] ") + kernel_name + ": " + e.what());
    }
  }
}

}  // namespace sg::emu
