// tools/bench/bench_train.h — `seekgrad bench train [--config configs/bench-small.yaml]`: what one
// training step of a whole DeepSeek model costs on this machine.
//
//   tokens/s     B·T / (median wall time of forward + backward + clip + AdamW), after 2 warm-up steps,
//                on uniformly random tokens (the speed does not depend on the data)
//   peak memory  sg::cpu_allocator_stats().peak_bytes over the timed steps (tensors only)
//   breakdown    forward: the Transformer::loss computation re-run module by module with a clock around
//                each module call (attention, MoE/FFN, head + loss, MTP, the rest: embedding, norms,
//                residual adds); its loss is checked against model.loss(). backward: every tape node gets
//                a hook (Node::hooks) that stamps the time when the reverse sweep reaches it, and the time
//                until the next stamp is charged to that node's scope ("layers.1.attn.wq_b" -> attention).
//                The node-to-node intervals include the sweep's own bookkeeping, so the backward shares are
//                exact in sum and close per component. optimizer: clip + AdamW step alone.
//
// What this is not: a profiler of individual kernels (`seekgrad bench gemm|ops|moe` are).
#pragma once
#include <string>

namespace sg::bench {

// steps: timed steps (median taken); json: one JSON object instead of the table. Returns 0.
// device_override: "" = the config's train.device; "cpu" or "cuda" (tokens/s on the GPU; under SEEKGRAD_CUDA_EMU the
// emulator's speed, which says nothing about a GPU).
int bench_train(const std::string& config_path, bool json, int steps = 5, const std::string& device_override = "");

}  // namespace sg::bench
