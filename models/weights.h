// models/weights.h — moving parameters between Tensors and HuggingFace safetensors checkpoints.
//
//   tensor_from_st / st_from_tensor   StTensor (raw little-endian bytes) <-> Tensor (f32/f64 numbers)
//   hf_to_official_name / official_to_hf_name
//                                     the two naming schemes of models/README.md §11: the official inference
//                                     code's (`layers.0.attn.wkv_a.weight`), which every Module's
//                                     parameters() uses, and HuggingFace's
//                                     (`model.layers.0.self_attn.kv_a_proj_with_mqa.weight`), which
//                                     checkpoints on disk use
//   load_parameters                   copy a module's parameters out of an HF-named file
//
// The name mapping is a parser, not a chain of string replacements: every component of a name must be
// one this model has, so a typo or a tensor of some other model is an error naming it rather than a
// silently wrong key. Mapped, per layer N (official ↔ HF):
//   embed.weight ↔ model.embed_tokens.weight     norm.weight ↔ model.norm.weight     head.weight ↔ lm_head.weight
//   layers.N.attn_norm ↔ model.layers.N.input_layernorm      layers.N.ffn_norm ↔ ….post_attention_layernorm
//   layers.N.attn.{wq, wq_a, q_norm, wq_b, wkv_a, kv_norm, wkv_b, wo}
//     ↔ ….self_attn.{q_proj, q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj}
//   layers.N.attn.indexer.{wq_b, wk, k_norm, weights_proj} ↔ ….self_attn.indexer.{same}   (V3.2 DSA; k_norm has a bias)
//   layers.N.ffn.{w1, w3, w2} ↔ ….mlp.{gate_proj, up_proj, down_proj}, also under experts.E. and shared_experts.
//   layers.N.ffn.gate.weight ↔ ….mlp.gate.weight     layers.N.ffn.gate.bias ↔ ….mlp.gate.e_score_correction_bias
//   MTP modules (stored as extra layers, models/README.md §11): layers.N.{enorm, hnorm, eh_proj, shared_head.norm,
//     shared_head.head} keep their names; layers.N.embed ↔ model.layers.N.embed_tokens (the converter's rule)
//   on any linear layer: .scale ↔ .weight_scale_inv (FP8 block scales)
//
// What this is not: sharded checkpoints, FP8 arithmetic (codes and scales are carried as they are; the FP8
// linear computes with them, ops/fp8_linear.h), or the whole-model save/load (models/transformer.h).
#pragma once
#include <optional>
#include <string>

#include "autograd/tensor.h"
#include "models/module.h"
#include "models/safetensors.h"

namespace sg {

// A contiguous Tensor with the file's numbers. F32, F64, F16 and BF16 are read (bf16/f16 exactly,
// f64 rounded when dtype is f32); integer tensors throw naming the tensor. dtype f8e4m3 takes an
// F8_E4M3 tensor's codes byte for byte (and only that); an FP8 tensor read as anything else throws.
Tensor tensor_from_st(const StTensor& st, DType dtype = DType::f32);

// The tensor's numbers as a safetensors entry, stored as `st_dtype` (default: F32 for f32 tensors,
// F64 for f64, I64 / I32 for integer tensors, F8_E4M3 codes for f8e4m3; F16/BF16 round to nearest even).
StTensor st_from_tensor(const std::string& name, const Tensor& t, std::optional<StDType> st_dtype = std::nullopt);

// models/README.md §11. Unknown names throw "[weights] unknown HF parameter name '<name>' (<why>)".
std::string hf_to_official_name(const std::string& hf);
std::string official_to_hf_name(const std::string& official);

// For every (official name, tensor) in `params`, finds official_to_hf_name(name) in `f` and copies its
// numbers into the tensor in place (converted to the parameter's dtype; the tensor keeps its identity,
// requires_grad and name). Errors name the file, the tensor and both shapes:
//   [load_parameters] model.safetensors: tensor 'model.layers.0.self_attn.q_proj.weight' (parameter
//   'layers.0.attn.wq.weight') has shape [192,128] but the parameter has shape (196, 128)
// Every parameter must be found. strict additionally requires the file to hold nothing else (all
// tensors it has that no parameter asked for are listed in the error); non-strict loads a part of a
// checkpoint (one layer out of a whole model). `file_path` is used in errors ("" = f.path).
void load_parameters(NamedParameters& params, const SafeTensorsFile& f, const std::string& file_path, bool strict);

}  // namespace sg
