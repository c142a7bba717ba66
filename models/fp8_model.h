// models/fp8_model.h — which linears of a DeepSeek model run in FP8, and switching them.
//
// DeepSeek-V3 (report §3.3) quantizes the linears that carry the bulk of the FLOPs and keeps the rest in
// higher precision. The FP8 linears, in official names (models/weights.h):
//   attention   attn.{wq | wq_a, wq_b}, attn.wkv_a, attn.wkv_b, attn.wo        (MLA, and MLA inside DSA)
//   indexer     attn.indexer.wq_b, attn.indexer.wk                            (V3.2; weights_proj stays f32)
//   FFN         ffn.{w1, w2, w3} (dense), ffn.experts.E.{w1, w2, w3}, ffn.shared_experts.{w1, w2, w3}
// of every main block and of every MTP module's block. NOT quantized: the embedding, the output head,
// the MoE gate, every norm, MTP's eh_proj, the indexer's weights_proj, and the attention core (scores,
// softmax, the weighted sum: those are not linears). This is exactly the set whose weights the official
// HF checkpoint stores as F8_E4M3 with a weight_scale_inv.
//
// What this is not: the FP8 arithmetic (ops/fp8_linear.h) or the checkpoint I/O (models/transformer.h).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/transformer.h"

namespace sg {

// (official name without ".weight", e.g. "layers.1.ffn.experts.3.w1" or "mtp.0.attn.wo", the Linear),
// in the order of Transformer::named_parameters().
std::vector<std::pair<std::string, Linear*>> fp8_linears(Transformer& model);

// The linears an FP8 checkpoint may store as F8_E4M3 + weight_scale_inv: fp8_linears, then the indexer's
// weights_proj and MTP's eh_proj (DeepSeek keeps those in BF16, but a file that quantizes them still
// loads). Not the head or the MoE gate: those read their weight directly.
std::vector<std::pair<std::string, Linear*>> checkpoint_fp8_linears(Transformer& model);

// Sets Linear::fp8 (FP8 Fprop/Dgrad/Wgrad on the f32 master weight) and its options on every FP8 linear;
// returns how many. The Transformer constructor calls it when args.fp8 is set.
int64_t enable_fp8_training(Transformer& model, const Fp8LinearOptions& options);

// Every FP8-stored weight (of checkpoint_fp8_linears) -> its f32 dequantization (scales dropped); returns how many were converted.
int64_t dequantize_fp8_linears(Transformer& model);
// Every FP8 linear's f32 weight -> 128×128-block E4M3 codes + scale (as an FP8 checkpoint stores it).
int64_t quantize_fp8_linears(Transformer& model);
// How many linears hold an FP8 (f8e4m3) weight now.
int64_t count_fp8_weights(Transformer& model);

}  // namespace sg
