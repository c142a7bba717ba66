// tools/bench/bench_ops.h — memory-bound op benchmarks behind `seekgrad bench ops`: softmax,
// rms_norm and elementwise ops in GB/s, each next to a memcpy of the same number of bytes measured
// in the same run (the practical ceiling for an op that streams its input once and writes once).
#pragma once

namespace sg::bench {

struct OpsBenchOptions {
  bool json = false;
  bool quick = false;
};
int bench_ops(const OpsBenchOptions& options);

}  // namespace sg::bench
