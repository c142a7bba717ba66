// tools/bench/bench_attention.h — `seekgrad bench attention`: prefill and decode tokens/s of one attention
// layer for MHA, GQA and MQA (models/attention.h: the fused flash kernel) and, when models/mla.h is in the
// build, MLA (prefill in naive mode, decode in absorbed mode — as DeepSeek's inference code does).
//
// Fixed: dim 256, 8 query heads; MHA/GQA/MQA with head_dim 32 and 8 / 2 / 1 kv heads; MLA with
// kv_lora_rank 128, qk_nope 32, qk_rope 16, v 32 (no q-LoRA). Batch 1, f32, no autograd.
//   prefill: one forward over T tokens, no cache — tokens/s = T / median time
//   decode:  the cache filled with T tokens (in chunks of 512, untimed), then one-token steps at positions
//            T, T+1, … — tokens/s = 1 / median step time
// T = 256, 512, 1024, 2048, 4096 (quick: up to 1024). MLA's prefill materialises [H, T, T] scores and is
// skipped above T = 2048 (256 MiB).
#pragma once

namespace sg::bench {

// Prints a table, or with json = true one JSON object per line per (variant, T). Returns 0 (an exit code).
int bench_attention(bool json, bool quick);

}  // namespace sg::bench
