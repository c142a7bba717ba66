// models/fp8_model.cpp — see fp8_model.h.
#include "models/fp8_model.h"

namespace sg {

namespace {

using NamedLinears = std::vector<std::pair<std::string, Linear*>>;

void add_mlp(MLP& m, const std::string& prefix, NamedLinears& out) {
  out.push_back({prefix + ".w1", &m.w1});
  out.push_back({prefix + ".w2", &m.w2});
  out.push_back({prefix + ".w3", &m.w3});
}

void add_mla(MLA& a, const std::string& prefix, NamedLinears& out) {
  if (a.q_lora_rank == 0) {
    out.push_back({prefix + ".wq", &a.wq});
  } else {
    out.push_back({prefix + ".wq_a", &a.wq_a});
    out.push_back({prefix + ".wq_b", &a.wq_b});
  }
  out.push_back({prefix + ".wkv_a", &a.wkv_a});
  out.push_back({prefix + ".wkv_b", &a.wkv_b});
  out.push_back({prefix + ".wo", &a.wo});
}

// The FP8 linears of one block, in Block::parameters() order.
void add_block(Block& b, const std::string& prefix, NamedLinears& out) {
  if (b.dsa) {
    add_mla(b.dsa->mla, prefix + ".attn", out);
    out.push_back({prefix + ".attn.indexer.wq_b", &b.dsa->indexer.wq_b});
    out.push_back({prefix + ".attn.indexer.wk", &b.dsa->indexer.wk});
  } else if (b.attn) {
    add_mla(*b.attn, prefix + ".attn", out);
  }
  if (b.moe) {
    for (size_t e = 0; e < b.moe->experts.size(); e++) add_mlp(b.moe->experts[e], prefix + ".ffn.experts." + std::to_string(e), out);
    if (b.moe->has_shared) add_mlp(b.moe->shared_experts, prefix + ".ffn.shared_experts", out);
  } else if (b.dense_ffn) {
    add_mlp(*b.dense_ffn, prefix + ".ffn", out);
  }
}

}  // namespace

std::vector<std::pair<std::string, Linear*>> fp8_linears(Transformer& model) {
  NamedLinears out;
  for (size_t i = 0; i < model.layers.size(); i++) add_block(*model.layers[i], "layers." + std::to_string(i), out);
  for (size_t k = 0; k < model.mtp.size(); k++) add_block(model.mtp[k]->block, "mtp." + std::to_string(k), out);
  return out;
}

std::vector<std::pair<std::string, Linear*>> checkpoint_fp8_linears(Transformer& model) {
  NamedLinears out = fp8_linears(model);
  for (size_t i = 0; i < model.layers.size(); i++)
    if (model.layers[i]->dsa) out.push_back({"layers." + std::to_string(i) + ".attn.indexer.weights_proj", &model.layers[i]->dsa->indexer.weights_proj});
  for (size_t k = 0; k < model.mtp.size(); k++) {
    const std::string p = "mtp." + std::to_string(k);
    out.push_back({p + ".eh_proj", &model.mtp[k]->eh_proj});
    if (model.mtp[k]->block.dsa) out.push_back({p + ".attn.indexer.weights_proj", &model.mtp[k]->block.dsa->indexer.weights_proj});
  }
  return out;
}

int64_t enable_fp8_training(Transformer& model, const Fp8LinearOptions& options) {
  int64_t n = 0;
  for (auto& [name, lin] : fp8_linears(model)) {
    lin->fp8 = true;
    lin->fp8_options = options;
    n++;
  }
  return n;
}

int64_t dequantize_fp8_linears(Transformer& model) {
  int64_t n = 0;
  for (auto& [name, lin] : checkpoint_fp8_linears(model))
    if (lin->is_fp8_weight()) lin->dequantize_fp8_weight(), n++;
  return n;
}

int64_t quantize_fp8_linears(Transformer& model) {
  int64_t n = 0;
  for (auto& [name, lin] : fp8_linears(model))
    if (!lin->is_fp8_weight()) lin->quantize_fp8_weight(), n++;
  return n;
}

int64_t count_fp8_weights(Transformer& model) {
  int64_t n = 0;
  for (auto& [name, lin] : checkpoint_fp8_linears(model)) n += lin->is_fp8_weight();
  return n;
}

}  // namespace sg
