// tools/cli/logits.h — `seekgrad logits --model DIR --tokens FILE.json --out FILE.safetensors [--decode]`:
// run a model directory (HF config.json + model.safetensors) on token sequences and write every
// position's logits, so another implementation (the official PyTorch code, HF transformers) can be
// compared with this one number by number.
//
//   tokens file  a JSON list of equally long lists of token ids: [[317, 162, ...], [117, 275, ...]]
//   output       a safetensors file with one F32 tensor "logits" [B, T, V]
//   decode       false: one full causal forward over [B, T];
//                true:  T forwards of one token each through the MLA latent KV cache (incremental
//                       decoding); the two agree to float rounding (~1e-6)
#pragma once
#include <string>

namespace sg {

// Returns 0 on success. Errors throw std::runtime_error naming the file and what is wrong
// ("[logits] toks.json: sequence 1 has 23 tokens but sequence 0 has 24").
int run_logits(const std::string& model_dir, const std::string& tokens_json, const std::string& out_path, bool decode,
               const std::string& fp8_weights = "");  // "" = config.json's fp8_weights; "native" | "dequant"

}  // namespace sg
