// models/transformer.cpp — see transformer.h. The forward is written the way models/README.md §2 and §7 read:
// embedding, blocks, final norm, head; the MTP chain after it; every step under a name scope
// ("layers.2.attn", "mtp.0.ffn") so the tape and the anomaly messages say where a number came from.
#include "models/transformer.h"

#include "models/fp8_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "models/json.h"
#include "models/output_paths.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "ops/ops.h"

namespace sg {

namespace fs = std::filesystem;

[[noreturn]] static void fail(const std::string& message) { throw std::runtime_error("[transformer] " + message); }

// ---- Block ------------------------------------------------------------------------------------

Block::Block(const ModelArgs& args, int64_t layer_id_, bool use_moe, Rng& rng, DType dtype)
    : layer_id(layer_id_), attn_norm(args.dim, args.rms_norm_eps, dtype), ffn_norm(args.dim, args.rms_norm_eps, dtype) {
  if (args.index_topk > 0)
    dsa = std::make_unique<DSA>(args, rng, dtype);
  else
    attn = std::make_unique<MLA>(args, rng, dtype);
  if (use_moe)
    moe = std::make_unique<MoE>(args, rng, dtype);
  else
    dense_ffn = std::make_unique<MLP>(args.dim, args.inter_dim, rng, dtype);
}

// h ← h + attn(attn_norm(h));  h ← h + ffn(ffn_norm(h))
Tensor Block::forward(const Tensor& h, int64_t start_pos, const RopeTable& rope, BlockCache* cache, BlockAux* aux,
                      const TrainForward* train, const Tensor& segment_ids) const {
  if (dsa && segment_ids.defined())  // the indexer's scores and top-k, and its losses, know no segments
    throw std::runtime_error("[dsa] segment_ids (packed sequences) are not supported for DSA blocks (layer " +
                             std::to_string(layer_id) + ")");
  Tensor x;
  {
    ScopeGuard s("attn_norm");
    x = attn_norm.forward(h);
  }
  {
    ScopeGuard s("attn");
    if (dsa && train && train->dsa) {
      if (cache) fail("layer " + std::to_string(layer_id) + ": a DSA training forward runs without a KV cache");
      DSATrainStep st = dsa_train_forward(*dsa, x, start_pos, rope, train->dsa_stage, train->measure_recall);
      x = st.out;
      if (aux) {
        aux->dsa_trained = true;
        aux->dsa = std::move(st);
      }
    } else {
      x = dsa ? dsa->forward(x, start_pos, rope, cache ? &cache->dsa : nullptr)
              : attn->forward(x, start_pos, rope, cache ? &cache->attn : nullptr, attn_mode, segment_ids);
    }
  }
  Tensor h1 = add(h, x);
  {
    ScopeGuard s("ffn_norm");
    x = ffn_norm.forward(h1);
  }
  {
    ScopeGuard s("ffn");
    if (moe) {
      MoEOutput mo = moe->forward_routed(x);
      x = mo.y;
      if (aux) {
        aux->moe_ran = true;
        aux->moe = std::move(mo);
      }
    } else {
      x = dense_ffn->forward(x);
    }
  }
  return add(h1, x);
}

void Block::parameters(const std::string& prefix, NamedParameters& out) {
  attn_norm.parameters(join_name(prefix, "attn_norm"), out);
  if (dsa)
    dsa->parameters(join_name(prefix, "attn"), out);
  else
    attn->parameters(join_name(prefix, "attn"), out);
  ffn_norm.parameters(join_name(prefix, "ffn_norm"), out);
  if (moe)
    moe->parameters(join_name(prefix, "ffn"), out);
  else
    dense_ffn->parameters(join_name(prefix, "ffn"), out);
}
void Block::buffers(const std::string& prefix, NamedParameters& out) {
  if (moe) moe->buffers(join_name(prefix, "ffn"), out);
}

// ---- MTP module --------------------------------------------------------------------------------

MTPModule::MTPModule(const ModelArgs& args, int64_t layer_id, Rng& rng, DType dtype)
    : enorm(args.dim, args.rms_norm_eps, dtype),
      hnorm(args.dim, args.rms_norm_eps, dtype),
      eh_proj(2 * args.dim, args.dim, rng, 0.0, dtype),
      block(args, layer_id, args.n_layers > args.n_dense_layers, rng, dtype),
      shared_head_norm(args.dim, args.rms_norm_eps, dtype) {}

// h' = eh_proj [enorm(Emb(t_{i+k})) ; hnorm(h^{k−1}_i)]  ([embedding ; hidden], as real checkpoints are)
Tensor MTPModule::forward(const Tensor& emb_next, const Tensor& h_prev, int64_t start_pos, const RopeTable& rope,
                          BlockCache* cache, BlockAux* aux, const TrainForward* train, const Tensor& segment_ids) const {
  if (emb_next.shape() != h_prev.shape())
    fail("MTP module: Emb(next tokens) " + emb_next.describe() + " and the previous hidden state " + h_prev.describe() +
         " must have the same shape [B, S, dim]");
  Tensor e, h;
  {
    ScopeGuard s("enorm");
    e = enorm.forward(emb_next);
  }
  {
    ScopeGuard s("hnorm");
    h = hnorm.forward(h_prev);
  }
  Tensor x;
  {
    ScopeGuard s("eh_proj");
    x = eh_proj.forward(cat({e, h}, -1));  // [B,S,2d] -> [B,S,d]
  }
  return block.forward(x, start_pos, rope, cache, aux, train, segment_ids);
}

void MTPModule::parameters(const std::string& prefix, NamedParameters& out) {
  enorm.parameters(join_name(prefix, "enorm"), out);
  hnorm.parameters(join_name(prefix, "hnorm"), out);
  eh_proj.parameters(join_name(prefix, "eh_proj"), out);
  block.parameters(prefix, out);  // flattened: mtp.k.attn_norm.weight, mtp.k.attn.*, mtp.k.ffn.*
  shared_head_norm.parameters(join_name(prefix, "shared_head.norm"), out);
}
void MTPModule::buffers(const std::string& prefix, NamedParameters& out) { block.buffers(prefix, out); }

// ---- cache ------------------------------------------------------------------------------------

void TransformerCache::set_length(int64_t n) {
  if (n < 0 || n > max_len)
    fail("TransformerCache::set_length(" + std::to_string(n) + ") outside [0, " + std::to_string(max_len) + "]");
  filled = n;
}

int64_t TransformerCache::bytes() const {
  int64_t b = 0;
  for (const std::vector<BlockCache>* v : {&layers, &mtp})
    for (const BlockCache& c : *v) {
      b += c.attn.bytes() + c.dsa.mla.bytes();
      if (c.dsa.indexer.k_cache.defined()) b += c.dsa.indexer.bytes_per_token() * c.dsa.indexer.max_batch_size * c.dsa.indexer.max_seq_len;
    }
  return b;
}

// ---- Transformer ------------------------------------------------------------------------------

Transformer::Transformer(const ModelArgs& args_, Rng& rng, DType dtype_) : args(args_), dtype(dtype_) {
  args.validate("Transformer");
  if (!is_floating(dtype)) fail(std::string("the model dtype must be f32 or f64, got ") + dtype_name(dtype));
  embed = Embedding(args.vocab_size, args.dim, rng, 1.0, dtype);
  for (int64_t i = 0; i < args.n_layers; i++)
    layers.push_back(std::make_unique<Block>(args, i, i >= args.n_dense_layers, rng, dtype));
  norm = RMSNorm(args.dim, args.rms_norm_eps, dtype);
  head = Linear(args.dim, args.vocab_size, rng, 0.0, dtype);
  for (int64_t k = 0; k < args.n_mtp_modules; k++)
    mtp.push_back(std::make_unique<MTPModule>(args, args.n_layers + k, rng, dtype));
  rope = RopeTable(args);
  if (args.fp8) {
    if (dtype != DType::f32) fail(std::string("fp8: true needs an f32 model (FP8 GEMMs read f32), got ") + dtype_name(dtype));
    enable_fp8_training(*this, Fp8LinearOptions{});
  }
}

// Checks tokens [B,S] (integer ids in [0, V)) and the positions against the rope table and the cache.
static void check_input(const Transformer& m, const char* what, const Tensor& tokens, int64_t start_pos,
                        const TransformerCache* cache) {
  std::string where = std::string(what) + ": tokens ";
  if (!tokens.defined()) fail(where + "are undefined");
  if (tokens.dim() != 2 || (tokens.dtype() != DType::i64 && tokens.dtype() != DType::i32))
    fail(where + tokens.describe() + " must be a [B, S] i64 tensor");
  const int64_t B = tokens.size(0), S = tokens.size(1);
  if (B == 0 || S == 0) fail(where + tokens.describe() + " is empty");
  for (int64_t id : tokens.to_i64_vector())
    if (id < 0 || id >= m.args.vocab_size)
      fail(where + tokens.describe() + " hold id " + std::to_string(id) + " outside [0, vocab_size = " +
           std::to_string(m.args.vocab_size) + ")");
  if (start_pos < 0) fail(std::string(what) + ": start_pos " + std::to_string(start_pos) + " is negative");
  if (start_pos + S > m.args.max_seq_len)
    fail(std::string(what) + ": positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) +
         ") run past max_seq_len " + std::to_string(m.args.max_seq_len));
  if (!cache) return;
  if (B > cache->batch)
    fail(std::string(what) + ": batch " + std::to_string(B) + " but the cache holds " + std::to_string(cache->batch) +
         " sequences");
  if (start_pos + S > cache->max_len)
    fail(std::string(what) + ": positions [" + std::to_string(start_pos) + ", " + std::to_string(start_pos + S) +
         ") run past the cache's max_len " + std::to_string(cache->max_len));
  if (start_pos > cache->length())
    fail(std::string(what) + ": start_pos " + std::to_string(start_pos) + " would leave a hole: the cache holds " +
         std::to_string(cache->length()) + " positions");
  if (cache->layers.size() != m.layers.size() || cache->mtp.size() != m.mtp.size())
    fail(std::string(what) + ": the cache was made for another model (" + std::to_string(cache->layers.size()) +
         " layers, " + std::to_string(cache->mtp.size()) + " MTP modules)");
}

// segment_ids (packed sequences) of a forward over tokens [B,S]: undefined, or [B,S] i64 without a cache.
static void check_segment_ids(const char* what, const Tensor& segment_ids, const Tensor& tokens,
                              const TransformerCache* cache) {
  if (!segment_ids.defined()) return;
  if (segment_ids.dtype() != DType::i64 || segment_ids.shape() != tokens.shape())
    fail(std::string(what) + ": segment_ids " + segment_ids.describe() + " must be an i64 tensor [B, S] = " +
         shape_str(tokens.shape()) + ", the shape of tokens " + tokens.describe());
  if (cache)
    fail(std::string(what) + ": segment_ids " + segment_ids.describe() +
         " (packed sequences) go with a forward without a KV cache");
}

Tensor Transformer::hidden(const Tensor& tokens, int64_t start_pos, TransformerCache* cache,
                           std::vector<Tensor>* block_inputs, std::vector<BlockAux>* aux, const TrainForward* train,
                           const Tensor& segment_ids) const {
  check_input(*this, "Transformer::forward", tokens, start_pos, cache);
  check_segment_ids("Transformer::forward", segment_ids, tokens, cache);
  Tensor h;
  {
    ScopeGuard s("embed");
    h = embed.forward(tokens.to(device()));  // [B,S,d] (host tokens are moved to the model's device)
  }
  if (aux) aux->assign(layers.size(), BlockAux{});
  for (size_t i = 0; i < layers.size(); i++) {
    if (block_inputs) block_inputs->push_back(h);
    ScopeGuard s("layers." + std::to_string(i));
    h = layers[i]->forward(h, start_pos, rope, cache ? &cache->layers[i] : nullptr, aux ? &(*aux)[i] : nullptr, train,
                           segment_ids);
  }
  if (block_inputs) block_inputs->push_back(h);
  if (cache) cache->filled = start_pos + tokens.size(1);
  ScopeGuard s("norm");
  return norm.forward(h);
}

Tensor Transformer::logits_from_hidden(const Tensor& normed) const {
  ScopeGuard s("head");
  return head.forward(normed);
}

Tensor Transformer::forward(const Tensor& tokens, int64_t start_pos, TransformerCache* cache,
                            const Tensor& segment_ids) const {
  return logits_from_hidden(hidden(tokens, start_pos, cache, nullptr, nullptr, nullptr, segment_ids));
}

Tensor Transformer::mtp_forward(int64_t k, const Tensor& next_tokens, const Tensor& h_prev, int64_t start_pos,
                                TransformerCache* cache, BlockAux* aux, const TrainForward* train,
                                const Tensor& segment_ids) const {
  if (k < 0 || k >= (int64_t)mtp.size())
    fail("mtp_forward: module " + std::to_string(k) + " does not exist (the model has " + std::to_string(mtp.size()) +
         " MTP modules)");
  if (cache && (cache->mtp.size() != mtp.size() || start_pos + next_tokens.size(1) > cache->max_len))
    fail("mtp_forward: the cache does not fit module " + std::to_string(k) + " at positions [" +
         std::to_string(start_pos) + ", " + std::to_string(start_pos + next_tokens.size(1)) + ")");
  check_input(*this, "Transformer::mtp_forward", next_tokens, start_pos, nullptr);
  check_segment_ids("Transformer::mtp_forward", segment_ids, next_tokens, cache);
  ScopeGuard s("mtp." + std::to_string(k));
  Tensor e;
  {
    ScopeGuard se("embed");
    e = embed.forward(next_tokens.to(device()));
  }
  return mtp[k]->forward(e, h_prev, start_pos, rope, cache ? &cache->mtp[k] : nullptr, aux, train, segment_ids);
}

Tensor Transformer::mtp_logits(int64_t k, const Tensor& h_k) const {
  if (k < 0 || k >= (int64_t)mtp.size()) fail("mtp_logits: module " + std::to_string(k) + " does not exist");
  Tensor x;
  {
    ScopeGuard s("mtp." + std::to_string(k) + ".shared_head.norm");
    x = mtp[k]->shared_head_norm.forward(h_k);
  }
  return logits_from_hidden(x);
}

// L = CE(head(norm(h)), targets) + (λ/D) Σ_k L^k + α · mean_MoE-blocks mean_b L_bal(b)
LossOutput Transformer::loss(const Tensor& tokens, const Tensor& targets, double mtp_lambda, double balance_alpha) const {
  LossOptions o;
  o.mtp_lambda = mtp_lambda;
  o.balance_alpha = balance_alpha;
  return loss(tokens, targets, o);
}

LossOutput Transformer::loss(const Tensor& tokens_in, const Tensor& targets_in, const LossOptions& options) const {
  const Tensor tokens = tokens_in.defined() ? tokens_in.to(device()) : tokens_in;  // host inputs are fine
  const Tensor targets = targets_in.defined() ? targets_in.to(device()) : targets_in;
  const double mtp_lambda = options.mtp_lambda, balance_alpha = options.balance_alpha;
  const TrainForward* train = options.train.dsa ? &options.train : nullptr;
  if (!targets.defined() || targets.shape() != tokens.shape() || targets.dtype() != DType::i64)
    fail("loss: targets " + (targets.defined() ? targets.describe() : std::string("(undefined)")) +
         " must be i64 with the shape of tokens " + tokens.describe());
  const Tensor& seg = options.segment_ids;
  check_segment_ids("loss", seg, tokens, nullptr);
  const int64_t S = tokens.size(1), D = (int64_t)mtp.size();
  LossOutput out;
  std::vector<BlockAux> aux;
  Tensor h0 = hidden(tokens, 0, nullptr, nullptr, &aux, train, seg);  // post-final-norm = h⁰ of the MTP chain
  {
    ScopeGuard s("loss");
    out.main_loss = cross_entropy(logits_from_hidden(h0), targets);
  }
  std::vector<MoEOutput> ran;  // the routing of every MoE block that ran in this call, in moe_layer_names() order
  std::vector<DSATrainStep> dsa_ran;  // the indexer losses of every DSA block in a training forward
  for (BlockAux& a : aux) {
    if (a.moe_ran) ran.push_back(std::move(a.moe));
    if (a.dsa_trained) dsa_ran.push_back(std::move(a.dsa));
  }

  // Depth d = k+1 sees positions i = 0..S−d−1: input Emb(t_{i+d}) = tokens[:, d:], hidden h^{d−1}[:, :S−d],
  // target t_{i+d+1} = targets[:, d:].
  // Packed sequences: position i keeps the segment of its hidden state, seg[:, :S−d], so the module's block
  // attends inside each sequence as the main blocks do. The last d positions of a sequence would pair its
  // hidden state with the NEXT sequence's tokens (seg[i] != seg[i+d]): their targets are ignored (-100),
  // so each sequence's MTP loss terms are exactly those it has alone.
  Tensor h_prev = h0;
  Tensor mtp_total;
  for (int64_t k = 0; k < D && k + 1 < S; k++) {
    const int64_t d = k + 1, L = S - d;
    Tensor next = contiguous(slice(tokens, 1, d, S));
    Tensor tgt = contiguous(slice(targets, 1, d, S));
    Tensor seg_k;
    if (seg.defined()) {
      seg_k = contiguous(slice(seg, 1, 0, L));
      const std::vector<int64_t> ids = seg.to_i64_vector();
      std::vector<int64_t> t = tgt.to_i64_vector();
      for (int64_t b = 0; b < tokens.size(0); b++)
        for (int64_t i = 0; i < L; i++)
          if (ids[b * S + i] != ids[b * S + i + d]) t[b * L + i] = -100;
      tgt = Tensor::from_vector(t, tgt.shape()).to(device());
    }
    BlockAux mtp_aux;
    Tensor hk = mtp_forward(k, next, slice(h_prev, 1, 0, L), 0, nullptr, &mtp_aux, train, seg_k);
    Tensor lk;
    {
      ScopeGuard s("mtp." + std::to_string(k) + ".loss");
      lk = cross_entropy(mtp_logits(k, hk), tgt);
    }
    out.mtp_losses.push_back(lk);
    mtp_total = mtp_total.defined() ? add(mtp_total, lk) : lk;
    if (mtp_aux.moe_ran) ran.push_back(std::move(mtp_aux.moe));
    if (mtp_aux.dsa_trained) dsa_ran.push_back(std::move(mtp_aux.dsa));
    h_prev = hk;
  }
  Tensor total = out.main_loss;
  if (mtp_total.defined() && mtp_lambda != 0.0) total = add(total, mul(mtp_total, mtp_lambda / (double)D));

  if (balance_alpha != 0.0 && !ran.empty()) {
    Tensor bal;
    for (const MoEOutput& m : ran) {
      Tensor b = mean(MoE::balance_loss(m, balance_alpha));  // mean over the batch's sequences
      bal = bal.defined() ? add(bal, b) : b;
    }
    out.balance_loss = mul(bal, 1.0 / (double)ran.size());
    total = add(total, out.balance_loss);
  } else {
    out.balance_loss = Tensor::scalar(0.0, dtype, device());
  }
  for (const MoEOutput& m : ran) out.expert_loads.push_back(m.stats.tokens_per_expert);
  if (!dsa_ran.empty()) {
    ScopeGuard s("indexer_loss");
    double recall = 0;
    int n_recall = 0;
    for (const DSATrainStep& d : dsa_ran) {
      out.indexer_loss = out.indexer_loss.defined() ? add(out.indexer_loss, d.indexer_loss) : d.indexer_loss;
      if (std::isfinite(d.recall)) recall += d.recall, n_recall++;
    }
    out.indexer_loss = mul(out.indexer_loss, 1.0 / (double)dsa_ran.size());
    out.indexer_recall = n_recall ? recall / n_recall : NAN;
  }
  for (int64_t k = std::max<int64_t>(0, std::min<int64_t>(D, S - 1)); k < D; k++)  // MTP modules too deep for S: no load
    if (mtp[k]->block.moe) out.expert_loads.push_back({});
  out.loss = total;
  return out;
}

std::vector<std::string> Transformer::moe_layer_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < layers.size(); i++)
    if (layers[i]->moe) names.push_back("layers." + std::to_string(i) + ".ffn");
  for (size_t k = 0; k < mtp.size(); k++)
    if (mtp[k]->block.moe) names.push_back("mtp." + std::to_string(k) + ".ffn");
  return names;
}

static std::vector<MoE*> moe_blocks(const Transformer& m) {
  std::vector<MoE*> out;
  for (auto& b : m.layers)
    if (b->moe) out.push_back(b->moe.get());
  for (auto& t : m.mtp)
    if (t->block.moe) out.push_back(t->block.moe.get());
  return out;
}

void add_expert_loads(std::vector<std::vector<int64_t>>& total, const std::vector<std::vector<int64_t>>& loads) {
  if (total.empty()) {
    total = loads;
    return;
  }
  if (total.size() != loads.size()) fail("add_expert_loads: " + std::to_string(loads.size()) + " MoE blocks, expected " + std::to_string(total.size()));
  for (size_t b = 0; b < loads.size(); b++) {
    if (loads[b].empty()) continue;  // that block did not run
    if (total[b].empty()) total[b].assign(loads[b].size(), 0);
    if (total[b].size() != loads[b].size())
      fail("add_expert_loads: MoE block " + std::to_string(b) + " has " + std::to_string(loads[b].size()) +
           " experts, expected " + std::to_string(total[b].size()));
    for (size_t e = 0; e < loads[b].size(); e++) total[b][e] += loads[b][e];
  }
}

void Transformer::update_gate_biases(const std::vector<std::vector<int64_t>>& loads, double gamma) {
  std::vector<MoE*> blocks = moe_blocks(*this);
  if (loads.size() != blocks.size())
    fail("update_gate_biases: loads of " + std::to_string(loads.size()) + " MoE blocks, but the model has " +
         std::to_string(blocks.size()) + " (" + std::to_string(layers.size()) + " layers + " + std::to_string(mtp.size()) + " MTP)");
  for (size_t i = 0; i < blocks.size(); i++)
    if (blocks[i]->gate.bias.defined() && !loads[i].empty()) blocks[i]->gate.update_bias(loads[i], gamma);
}

void Transformer::to(Device d) {
  move_parameters_to(d);
  rope.cos = rope.cos.to(d);
  rope.sin = rope.sin.to(d);
}

std::unique_ptr<TransformerCache> Transformer::make_cache(int64_t batch, int64_t max_len) const {
  if (batch <= 0 || max_len <= 0 || max_len > args.max_seq_len)
    fail("make_cache(batch " + std::to_string(batch) + ", max_len " + std::to_string(max_len) +
         "): need batch > 0 and 0 < max_len <= max_seq_len " + std::to_string(args.max_seq_len));
  auto c = std::make_unique<TransformerCache>();
  c->mode = layers.empty() ? MLAMode::absorbed : layers[0]->attn_mode;
  c->batch = batch;
  c->max_len = max_len;
  auto block_cache = [&](const Block& b) {
    BlockCache bc;
    if (b.dsa)
      bc.dsa = DSACache(args, batch, max_len, dtype, device());
    else
      bc.attn = MLACache(args, b.attn_mode, batch, max_len, dtype, device());
    return bc;
  };
  for (auto& b : layers) c->layers.push_back(block_cache(*b));
  for (auto& t : mtp) c->mtp.push_back(block_cache(t->block));
  return c;
}

void Transformer::set_attn_mode(MLAMode mode) {
  for (auto& b : layers) b->attn_mode = mode;
  for (auto& t : mtp) t->block.attn_mode = mode;
}

void Transformer::parameters(const std::string& prefix, NamedParameters& out) {
  embed.parameters(join_name(prefix, "embed"), out);
  for (size_t i = 0; i < layers.size(); i++) layers[i]->parameters(join_name(prefix, "layers." + std::to_string(i)), out);
  norm.parameters(join_name(prefix, "norm"), out);
  head.parameters(join_name(prefix, "head"), out);
  for (size_t k = 0; k < mtp.size(); k++) mtp[k]->parameters(join_name(prefix, "mtp." + std::to_string(k)), out);
}
void Transformer::buffers(const std::string& prefix, NamedParameters& out) {
  for (size_t i = 0; i < layers.size(); i++) layers[i]->buffers(join_name(prefix, "layers." + std::to_string(i)), out);
  for (size_t k = 0; k < mtp.size(); k++) mtp[k]->buffers(join_name(prefix, "mtp." + std::to_string(k)), out);
}

// ---- names ------------------------------------------------------------------------------------

// "mtp.k.rest" -> (k, "rest"); false for other names.
static bool split_mtp_name(const std::string& name, int64_t& k, std::string& rest) {
  if (name.rfind("mtp.", 0) != 0) return false;
  size_t dot = name.find('.', 4);
  std::string num = name.substr(4, dot == std::string::npos ? std::string::npos : dot - 4);
  if (num.empty() || dot == std::string::npos || num.find_first_not_of("0123456789") != std::string::npos)
    fail("parameter name '" + name + "': expected mtp.<number>.<name>");
  k = std::stoll(num);
  rest = name.substr(dot + 1);
  return true;
}

// "layers.N.rest" -> (N, "rest"); false for other names.
static bool split_layer_name(const std::string& name, int64_t& n, std::string& rest) {
  if (name.rfind("layers.", 0) != 0) return false;
  size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return false;
  std::string num = name.substr(7, dot - 7);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return false;
  n = std::stoll(num);
  rest = name.substr(dot + 1);
  return true;
}

std::string transformer_param_to_hf(const std::string& official, int64_t n_layers) {
  int64_t k = 0, n = 0;
  std::string rest;
  if (split_mtp_name(official, k, rest)) return official_to_hf_name("layers." + std::to_string(n_layers + k) + "." + rest);
  if (split_layer_name(official, n, rest) && n >= n_layers)
    fail("parameter '" + official + "': layer " + std::to_string(n) + " but the model has " + std::to_string(n_layers) +
         " layers (MTP modules are named mtp.k.*)");
  return official_to_hf_name(official);
}

std::string hf_to_transformer_param(const std::string& hf, int64_t n_layers) {
  std::string official = hf_to_official_name(hf);
  int64_t n = 0;
  std::string rest;
  if (split_layer_name(official, n, rest) && n >= n_layers) return "mtp." + std::to_string(n - n_layers) + "." + rest;
  return official;
}

// ---- import / export ----------------------------------------------------------------------------

namespace {

// The FP8 block size of an HF config.json's quantization_config (DeepSeek-V3: quant_method "fp8", fmt
// "e4m3", weight_block_size [128, 128]); 128 when absent. Our GEMM needs square blocks.
int64_t fp8_block_of_config(const Json& c, const std::string& path) {
  const Json* q = c.find("quantization_config");
  if (!q || q->is_null()) return 128;
  const std::string where = "[load_model_dir] " + path + ": quantization_config";
  if (!q->is_object()) throw std::runtime_error(where + " must be an object");
  if (const Json* m = q->find("quant_method"); m && !(m->is_string() && m->get_string() == "fp8"))
    throw std::runtime_error(where + ".quant_method must be \"fp8\" (the only quantization this project reads)");
  if (const Json* f = q->find("fmt"); f && !(f->is_string() && f->get_string() == "e4m3"))
    throw std::runtime_error(where + ".fmt must be \"e4m3\" (DeepSeek-V3's weights)");
  const Json* wb = q->find("weight_block_size");
  if (!wb || wb->is_null()) return 128;
  if (!wb->is_array() || wb->size() != 2 || !(*wb)[0].is_number() || !(*wb)[1].is_number())
    throw std::runtime_error(where + ".weight_block_size must be [rows, cols]");
  const int64_t b0 = (*wb)[0].get_int(), b1 = (*wb)[1].get_int();
  if (b0 <= 0 || b0 != b1)
    throw std::runtime_error(where + ".weight_block_size [" + std::to_string(b0) + ", " + std::to_string(b1) +
                             "]: the FP8 GEMM needs square positive blocks");
  return b0;
}

}  // namespace

Transformer load_model_dir(const std::string& dir, DType dtype) { return load_model_dir(dir, dtype, ""); }

Transformer load_model_dir(const std::string& dir, DType dtype, const std::string& fp8_weights_override) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  const std::string where = "[load_model_dir] ";
  if (!fs::is_directory(dir)) throw std::runtime_error(where + dir + ": not a directory");
  if (!fs::exists(config_path)) throw std::runtime_error(where + config_path + ": no such file");
  if (!fs::exists(weights_path)) throw std::runtime_error(where + weights_path + ": no such file");
  ModelArgs args = load_model_args_json(config_path);
  if (!fp8_weights_override.empty()) {
    args.fp8_weights = fp8_weights_override;
    args.validate("--fp8");
  }
  int64_t fp8_block = 128;
  {
    std::ifstream in(config_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    fp8_block = fp8_block_of_config(Json::parse(text.str(), config_path), config_path);
  }
  SafeTensorsFile f = read_safetensors(weights_path);

  Rng rng(0);
  Transformer model(args, rng, dtype);
  // FP8 weights: every linear whose weight the file stores as F8_E4M3 takes its codes (f8e4m3) and a
  // scale buffer of the block grid's shape, filled below from '<name>.weight_scale_inv' (load_parameters
  // checks its presence and shape). Which linears are FP8 is read from the file.
  int64_t n_fp8 = 0;
  for (auto& [name, lin] : checkpoint_fp8_linears(model)) {
    int64_t k = 0;
    std::string rest, on_disk = name;
    if (split_mtp_name(name, k, rest)) on_disk = "layers." + std::to_string(args.n_layers + k) + "." + rest;
    const StTensor* st = f.find(official_to_hf_name(on_disk + ".weight"));
    if (!st || st->dtype != StDType::F8_E4M3) continue;
    if (dtype != DType::f32)
      throw std::runtime_error(where + weights_path + ": tensor '" + st->name + "' is F8_E4M3; FP8 weights load into an f32 model only");
    const Shape shape = lin->weight.shape();
    Tensor codes = Tensor::zeros(shape, DType::f8e4m3);
    codes.set_name(lin->weight.name()).set_param_kind(lin->weight.param_kind());
    lin->weight = codes;
    lin->scale = Tensor::zeros({(shape[0] + fp8_block - 1) / fp8_block, (shape[1] + fp8_block - 1) / fp8_block});
    lin->fp8_options.block = fp8_block;
    lin->fp8_options.ue8m0 = args.scale_ue8m0();
    n_fp8++;
  }
  // The parameters and buffers under their on-disk layer names (mtp.k.* -> layers.{n_layers+k}.*).
  NamedParameters params = model.named_parameters_and_buffers();
  for (auto& [name, t] : params) {
    int64_t k = 0;
    std::string rest;
    if (split_mtp_name(name, k, rest)) name = "layers." + std::to_string(args.n_layers + k) + "." + rest;
  }
  load_parameters(params, f, weights_path, /*strict=*/false);
  // A scale must be a positive finite number (the official weight_scale_inv is amax/448 of its block).
  for (auto& [name, lin] : checkpoint_fp8_linears(model)) {
    if (!lin->is_fp8_weight()) continue;
    std::vector<float> sc = lin->scale.to_f32_vector();
    for (size_t i = 0; i < sc.size(); i++)
      if (!(sc[i] > 0.0f) || !std::isfinite(sc[i]))
        throw std::runtime_error(where + weights_path + ": '" + name + ".weight_scale_inv' block " + std::to_string(i) +
                                 " is " + std::to_string(sc[i]) + "; FP8 block scales must be positive and finite");
  }

  // Everything else in the file must be an MTP module's copy of the shared embedding / head, equal to it.
  std::set<std::string> used;
  for (auto& [name, t] : params) used.insert(official_to_hf_name(name));
  std::vector<bool> has_embed(model.mtp.size(), false), has_head(model.mtp.size(), false);
  for (const StTensor& st : f.tensors) {
    if (used.count(st.name)) continue;
    std::string official;
    try {
      official = hf_to_transformer_param(st.name, args.n_layers);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + weights_path + ": tensor '" + st.name + "' is not a parameter of this model: " +
                               e.what());
    }
    int64_t k = 0;
    std::string rest;
    const Tensor* shared = nullptr;
    if (split_mtp_name(official, k, rest) && k < (int64_t)model.mtp.size()) {
      if (rest == "embed.weight") shared = &model.embed.weight, has_embed[k] = true;
      if (rest == "shared_head.head.weight") shared = &model.head.weight, has_head[k] = true;
    }
    if (!shared)
      throw std::runtime_error(where + weights_path + ": tensor '" + st.name + "' (" + official +
                               ") is not a parameter of this model (" + std::to_string(args.n_layers) + " layers, " +
                               std::to_string(args.n_mtp_modules) + " MTP modules, per config.json)");
    if (st.shape != shared->shape())
      throw std::runtime_error(where + weights_path + ": tensor '" + st.name + "' has shape " + st_shape_str(st.shape) +
                               " but the shared tensor it copies has shape " + shape_str(shared->shape()));
    std::vector<double> a = to_f64(st), b = tensor_from_st(st, shared->dtype()).to_f64_vector(),
                        c = shared->to_f64_vector();
    for (size_t i = 0; i < c.size(); i++)
      if (b[i] != c[i])
        throw std::runtime_error(where + weights_path + ": tensor '" + st.name +
                                 "' should be a copy of the shared " + (rest == "embed.weight" ? "embedding" : "head") +
                                 " but differs at element " + std::to_string(i) + " (" + std::to_string(a[i]) +
                                 " vs " + std::to_string(c[i]) + ")");
  }
  for (size_t k = 0; k < model.mtp.size(); k++) {
    const std::string L = "model.layers." + std::to_string(args.n_layers + (int64_t)k) + ".";
    if (!has_embed[k]) throw std::runtime_error(where + weights_path + ": no tensor '" + L + "embed_tokens.weight' (MTP copy of the embedding)");
    if (!has_head[k]) throw std::runtime_error(where + weights_path + ": no tensor '" + L + "shared_head.head.weight' (MTP copy of the head)");
  }
  if (n_fp8 && args.fp8_weights == "dequant") dequantize_fp8_linears(model);
  return model;
}

void save_model_dir(Transformer& model, const std::string& dir_in) {
  const std::string dir = dir_path(dir_in);  // a trailing '/' would make DIR.tmp a child of DIR
  const std::string tmp = dir + ".tmp", old = dir + ".old";
  const int64_t n_layers = model.args.n_layers;
  std::vector<StTensor> tensors;
  for (auto& [name, t] : model.named_parameters_and_buffers()) {
    tensors.push_back(st_from_tensor(transformer_param_to_hf(name, n_layers), *t));
    int64_t k = 0;
    std::string rest;
    // After each MTP module's shared_head.norm: its copies of the shared head and embedding.
    if (split_mtp_name(name, k, rest) && rest == "shared_head.norm.weight") {
      const std::string L = "layers." + std::to_string(n_layers + k) + ".";
      tensors.push_back(st_from_tensor(official_to_hf_name(L + "shared_head.head.weight"), model.head.weight));
      tensors.push_back(st_from_tensor(official_to_hf_name(L + "embed.weight"), model.embed.weight));
    }
  }
  Json config = model_args_to_hf_config(model.args);
  config.set("torch_dtype", model.dtype == DType::f64 ? "float64" : "float32");
  if (count_fp8_weights(model) > 0) {  // the HF DeepSeek-V3 FP8 layout's description
    int64_t block = 128;
    for (auto& [name, lin] : checkpoint_fp8_linears(model))
      if (lin->is_fp8_weight()) block = lin->fp8_options.block;
    Json q = Json::object();
    q.set("activation_scheme", "dynamic");
    q.set("fmt", "e4m3");
    q.set("quant_method", "fp8");
    if (model.args.scale_ue8m0()) q.set("scale_fmt", "ue8m0");
    q.set("weight_block_size", Json(Json::Array{Json(block), Json(block)}));
    config.set("quantization_config", q);
  }

  std::error_code ec;
  recover_dir(dir, tmp, old);  // a save killed half way: its old DIR back, its partial DIR.tmp gone
  if (!fs::create_directories(tmp, ec) && ec)
    throw std::runtime_error("[save_model_dir] " + tmp + ": cannot create the directory: " + ec.message());
  {
    const std::string cpath = (fs::path(tmp) / "config.json").string();
    std::ofstream out(cpath);
    out << config.dump(2) << "\n";
    if (!out) throw std::runtime_error("[save_model_dir] " + cpath + ": write failed");
  }
  write_safetensors((fs::path(tmp) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  // DIR is replaced as a whole (a kill leaves the old model or the new one, never a mix of the two); its
  // other files (a tokenizer, a README, notes) are carried over into the new one.
  replace_dir(tmp, dir, old, "save_model_dir");
}

}  // namespace sg
