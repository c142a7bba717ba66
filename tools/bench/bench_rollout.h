// tools/bench/bench_rollout.h — `seekgrad bench rollout [--config configs/tiny.yaml] [--json]`: what batched
// KV-cache sampling (models/generate.h generate_batch) buys for RL rollouts, against generate() row by row.
//
// One case, the shape of a GRPO group: G = 8 rows continuing ONE prompt of 40 tokens with 64 new tokens each,
// temperature 1 (no top-k / top-p), row r seeded r, no stop token (every row runs the full 64 tokens), on the
// config's model shape with RANDOM weights (the speed does not depend on the weights; the output says so).
//   row_by_row  generate() 8 times: 8 prefills + 8 × 63 decode forwards at batch 1
//   batched     one generate_batch(): 1 prefill at batch 8 + 63 decode forwards at batch 8
// Median wall time of 3 runs after a warm-up; the two modes' tokens are compared (they must be identical).
//
// What this is not: a throughput test of the attention kernels (`seekgrad bench attention`) or of a served model.
#pragma once
#include <string>

namespace sg::bench {

// Prints a table, or with json = true one JSON object per line per mode. Returns 0, or 1 when the batched
// tokens differ from the row-by-row ones.
int bench_rollout(const std::string& config_path, bool json);

}  // namespace sg::bench
