// autograd/runtime.cpp — the thread pool behind parallel_for. See runtime.h.
#include "autograd/runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sg {

namespace {
struct ThreadSetting {
  std::atomic<int> threads{1};
  std::atomic<ThreadsFrom> from{ThreadsFrom::default_value};
};
// SEEKGRAD_THREADS=n, read the first time the setting is asked for; default: the hardware threads.
ThreadSetting& thread_setting() {
  static ThreadSetting* s = [] {
    int threads = (int)std::max(1u, std::thread::hardware_concurrency());
    ThreadsFrom from = ThreadsFrom::default_value;
    const char* v = std::getenv("SEEKGRAD_THREADS");
    if (v && *v) {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (*end != '\0' || n < 1 || n > 4096)  // before the allocation below: the error path leaks nothing (LSan)
        throw std::runtime_error(std::string("[threads] SEEKGRAD_THREADS='") + v + "' is not a positive integer (1 to 4096)");
      threads = (int)n;
      from = ThreadsFrom::environment;
    }
    auto* t = new ThreadSetting;
    t->threads = threads;
    t->from = from;
    return t;
  }();
  return *s;
}
}  // namespace

const char* threads_from_name(ThreadsFrom from) {
  switch (from) {
    case ThreadsFrom::command_line: return "--threads";
    case ThreadsFrom::environment: return "SEEKGRAD_THREADS";
    case ThreadsFrom::config: return "train.threads";
    case ThreadsFrom::default_value: return "default";
  }
  return "?";
}

int num_threads() { return thread_setting().threads.load(std::memory_order_relaxed); }
ThreadsFrom num_threads_from() { return thread_setting().from.load(std::memory_order_relaxed); }

bool set_num_threads(int n, ThreadsFrom from) {
  if (n < 1)
    throw std::runtime_error(std::string("[threads] ") + threads_from_name(from) + ": n = " + std::to_string(n) +
                             " must be >= 1");
  ThreadSetting& s = thread_setting();
  if ((int)s.from.load() < (int)from) return false;  // a setting of higher precedence is in force
  s.threads = n;
  s.from = from;
  return true;
}
void set_num_threads(int n) { thread_setting().threads = std::max(1, n); }
void set_num_threads_source_for_tests(ThreadsFrom from) { thread_setting().from = from; }

// ---- the thread pool -------------------------------------------------------------------------
// One pool for the whole process, created on first use with num_threads() - 1 workers (the caller
// is the last worker). Workers wait PASSIVELY on a condition variable after a short spin: on a
// 2-core machine a spinning runtime (OpenMP's default) steals the core another job needs — measured
// here as a 20x slowdown of small kernels when two processes share the machine (README.md, Design §3).
// Chunks are claimed, not assigned (run() says why). Measured on the bench-small training step, 2
// threads, quiet machine: claiming + the 50 µs spin took the step from ~370 to ~300 ms; with another
// process busy on the second core, 2 threads went from ~1.4x slower than 1 thread to about equal.
// A parallel_for inside a parallel_for runs serially on the calling worker.
namespace {
thread_local bool tl_in_parallel = false;

// How long an idle worker spins (yielding) before it sleeps; see worker_loop.
constexpr std::chrono::microseconds kWorkerSpin{50};

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; i++) threads_.emplace_back([this] { worker_loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      generation_++;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return (int)threads_.size() + 1; }

  // Runs fn(chunk) for every chunk in [0, chunks). The caller runs chunk 0, then every participant —
  // the caller and each worker as it wakes — claims the next unclaimed chunk from a counter until none
  // is left. Which thread runs a chunk does not matter (chunks are independent); what it buys: when a
  // worker is slow to wake, or its core is busy with another process, the caller runs that worker's
  // chunk itself instead of waiting — a region never takes longer than running it serially, plus a
  // little (on a shared 2-core machine, static assignment made 2 threads slower than 1).
  void run(int chunks, const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      job_chunks_ = chunks;
      next_chunk_.store(1);
      pending_.store(chunks - 1);
      generation_++;
    }
    wake_.notify_all();
    tl_in_parallel = true;
    fn(0);
    run_claimed_chunks(fn, chunks);
    tl_in_parallel = false;
    // Wait for the chunks the workers claimed: spin briefly (chunks are usually similar in length),
    // then sleep. Under the lock, job_ = nullptr ends the region: a worker that has not joined by then
    // never will (it joins only under the same lock, while job_ is set).
    for (int spin = 0; spin < 4000 && pending_.load(std::memory_order_acquire) > 0; spin++) std::this_thread::yield();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_.load() == 0 && active_workers_ == 0; });
    job_ = nullptr;
  }

 private:
  void run_claimed_chunks(const std::function<void(int)>& fn, int chunks) {
    for (int c; (c = next_chunk_.fetch_add(1, std::memory_order_acq_rel)) < chunks;) {
      fn(c);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    while (true) {
      const std::function<void(int)>* job = nullptr;
      int chunks = 0;
      {
        // Spin a moment before sleeping: in a training step the next parallel region usually comes
        // within microseconds, and a sleeping worker takes ~15 µs to wake (a futex round trip, measured
        // here). The spin is short (kWorkerSpin) and yields the core to any other runnable process at
        // every turn, so a busy 2-core machine loses next to nothing to it.
        for (auto t0 = std::chrono::steady_clock::now();
             generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() - t0 < kWorkerSpin;)
          std::this_thread::yield();
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
        chunks = job_chunks_;
        if (job) active_workers_++;
      }
      if (!job) continue;  // the region ended before this worker woke
      tl_in_parallel = true;
      run_claimed_chunks(*job, chunks);
      tl_in_parallel = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        active_workers_--;
      }
      done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_, run_mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  int job_chunks_ = 0;
  int active_workers_ = 0;            // workers inside the current region (guarded by mu_)
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_chunk_{0};    // the next chunk to claim
  std::atomic<int> pending_{0};       // chunks other than 0 not finished yet
  bool stop_ = false;
};

ThreadPool& pool_for(int threads) {
  // Re-created only when the requested size grows (set_num_threads); sizes are tiny, so simple.
  static std::mutex mu;
  static std::unique_ptr<ThreadPool> pool;
  std::lock_guard<std::mutex> lock(mu);
  if (!pool || pool->size() < threads) {
    pool.reset();
    pool = std::make_unique<ThreadPool>(threads - 1);
  }
  return *pool;
}
}  // namespace

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t threads = std::min<int64_t>(num_threads(), n / grain);
  if (threads < 2 || tl_in_parallel) {
    fn(0, n);
    return;
  }
  ThreadPool& pool = pool_for((int)threads);
  pool.run((int)threads, [&](int t) {
    int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace sg
