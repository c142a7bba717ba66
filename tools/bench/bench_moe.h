// tools/bench/bench_moe.h — `seekgrad bench moe`: forward + backward time of a DeepSeekMoE layer
// (models/moe.h: gate, counting-sort dispatch, one SwiGLU per expert, index_add combine) next to a dense
// SwiGLU FFN with the same ACTIVE parameters per token (inter = K · moe_inter_dim), from 8 to 256 experts.
//
// Fixed per case: tokens 1024, dim 128, active width K · moe_inter_dim = 256 (fine-grained experts:
// 8 experts top-2 × 128, 16 top-4 × 64, then top-8 × 32 for 32 … 256 experts, as DeepSeek splits its
// experts), no shared experts (they would add the same dense cost to both sides). The ratio column is the
// price of routing: the gate GEMM, the sort, the gathers/scatters and many small GEMMs instead of one big one.
#pragma once

namespace sg::bench {

// Prints a table, or with json = true one JSON object per line per case. Returns 0 (an exit code).
int bench_moe(bool json);

}  // namespace sg::bench
