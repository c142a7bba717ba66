// train/config_yaml.cpp — see config_yaml.h. One table of keys per section: each entry parses its
// scalar strictly (the whole string must be the number) and checks its range.
#include "train/config_yaml.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

namespace sg {
namespace {

[[noreturn]] void fail(const std::string& src, const std::string& what) {
  throw std::runtime_error("[config] " + src + ": " + what);
}

enum class Range { any, positive, nonnegative, unit };  // unit: [0, 1]

struct Reader {
  std::string src;

  std::string scalar(const YAML::Node& n, const std::string& key, const char* what) const {
    if (!n.IsScalar()) fail(src, key + " must be " + what + ", got a " + (n.IsMap() ? "map" : n.IsSequence() ? "list" : "null"));
    return n.Scalar();
  }
  static const char* range_words(Range r, bool integer) {
    switch (r) {
      case Range::positive: return integer ? "a positive integer" : "a positive number";
      case Range::nonnegative: return integer ? "a non-negative integer" : "a non-negative number";
      case Range::unit: return "a number in [0, 1]";
      default: return integer ? "an integer" : "a number";
    }
  }
  int64_t integer(const YAML::Node& n, const std::string& key, Range r) const {
    const char* words = range_words(r, true);
    std::string s = scalar(n, key, words);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    bool ok = ec == std::errc() && end == s.data() + s.size() && !s.empty();
    if (ok && r == Range::positive && v <= 0) ok = false;
    if (ok && r == Range::nonnegative && v < 0) ok = false;
    if (!ok) fail(src, key + " must be " + words + ", got '" + s + "'");
    return v;
  }
  double number(const YAML::Node& n, const std::string& key, Range r) const {
    const char* words = range_words(r, false);
    std::string s = scalar(n, key, words);
    char* end = nullptr;
    double v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
    bool ok = !s.empty() && end == s.c_str() + s.size() && std::isfinite(v);
    if (ok && r == Range::positive && !(v > 0)) ok = false;
    if (ok && r == Range::nonnegative && !(v >= 0)) ok = false;
    if (ok && r == Range::unit && !(v >= 0 && v <= 1)) ok = false;
    if (!ok) fail(src, key + " must be " + words + ", got '" + s + "'");
    return v;
  }
  bool boolean(const YAML::Node& n, const std::string& key) const {
    std::string s = scalar(n, key, "true or false");
    if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "False" || s == "no" || s == "off") return false;
    fail(src, key + " must be true or false, got '" + s + "'");
  }
  std::string string(const YAML::Node& n, const std::string& key) const { return scalar(n, key, "a string"); }
};

using KeyTable = std::map<std::string, std::function<void(const YAML::Node&, const std::string& key)>>;

// Applies `table` to every key of the map `node` (named `section` in errors).
void read_section(const Reader& rd, const YAML::Node& node, const std::string& section, const KeyTable& table) {
  if (!node.IsMap()) fail(rd.src, "'" + section + "' must be a map of key: value");
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string k = it->first.as<std::string>();
    std::string dotted = section + "." + k;
    auto f = table.find(k);
    if (f == table.end()) fail(rd.src, "key '" + dotted + "' is not a known key");
    f->second(it->second, dotted);
  }
}

KeyTable model_keys(const Reader& rd, ModelArgs& a) {
  KeyTable t;
  auto i64 = [&](const char* name, int64_t& field, Range r) {
    t[name] = [&rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.integer(n, k, r); };
  };
  auto f64 = [&](const char* name, double& field, Range r) {
    t[name] = [&rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.number(n, k, r); };
  };
  i64("max_batch_size", a.max_batch_size, Range::positive);
  i64("max_seq_len", a.max_seq_len, Range::positive);
  i64("vocab_size", a.vocab_size, Range::positive);
  i64("dim", a.dim, Range::positive);
  i64("inter_dim", a.inter_dim, Range::positive);
  i64("moe_inter_dim", a.moe_inter_dim, Range::positive);
  i64("n_layers", a.n_layers, Range::positive);
  i64("n_dense_layers", a.n_dense_layers, Range::nonnegative);
  i64("n_heads", a.n_heads, Range::positive);
  i64("n_kv_heads", a.n_kv_heads, Range::nonnegative);
  i64("n_routed_experts", a.n_routed_experts, Range::nonnegative);
  i64("n_shared_experts", a.n_shared_experts, Range::nonnegative);
  i64("n_activated_experts", a.n_activated_experts, Range::nonnegative);
  i64("n_expert_groups", a.n_expert_groups, Range::positive);
  i64("n_limited_groups", a.n_limited_groups, Range::positive);
  t["score_func"] = [&rd, &a](const YAML::Node& n, const std::string& k) {
    a.score_func = rd.string(n, k);
    if (a.score_func != "softmax" && a.score_func != "sigmoid")
      fail(rd.src, k + " must be 'softmax' or 'sigmoid', got '" + a.score_func + "'");
  };
  f64("route_scale", a.route_scale, Range::positive);
  t["gate_bias"] = [&rd, &a](const YAML::Node& n, const std::string& k) { a.gate_bias = rd.boolean(n, k); };
  i64("q_lora_rank", a.q_lora_rank, Range::nonnegative);
  i64("kv_lora_rank", a.kv_lora_rank, Range::positive);
  i64("qk_nope_head_dim", a.qk_nope_head_dim, Range::positive);
  i64("qk_rope_head_dim", a.qk_rope_head_dim, Range::positive);
  i64("v_head_dim", a.v_head_dim, Range::positive);
  i64("original_seq_len", a.original_seq_len, Range::positive);
  f64("rope_theta", a.rope_theta, Range::positive);
  f64("rope_factor", a.rope_factor, Range::positive);
  i64("beta_fast", a.beta_fast, Range::nonnegative);
  i64("beta_slow", a.beta_slow, Range::nonnegative);
  f64("mscale", a.mscale, Range::positive);
  f64("rms_norm_eps", a.rms_norm_eps, Range::positive);
  i64("index_n_heads", a.index_n_heads, Range::nonnegative);
  i64("index_head_dim", a.index_head_dim, Range::positive);
  i64("index_topk", a.index_topk, Range::nonnegative);
  i64("n_mtp_modules", a.n_mtp_modules, Range::nonnegative);
  return t;
}

KeyTable data_keys(const Reader& rd, DataConfig& d) {
  KeyTable t;
  t["dir"] = [&rd, &d](const YAML::Node& n, const std::string& k) { d.dir = rd.string(n, k); };
  t["source"] = [&rd, &d](const YAML::Node& n, const std::string& k) {
    d.source = rd.string(n, k);
    if (d.source != "generated" && d.source != "text")
      fail(rd.src, k + " must be 'generated' or 'text', got '" + d.source + "'");
  };
  t["text_path"] = [&rd, &d](const YAML::Node& n, const std::string& k) { d.text_path = rd.string(n, k); };
  t["n_stories"] = [&rd, &d](const YAML::Node& n, const std::string& k) { d.n_stories = rd.integer(n, k, Range::positive); };
  t["vocab_size"] = [&rd, &d](const YAML::Node& n, const std::string& k) {
    d.vocab_size = rd.integer(n, k, Range::positive);
    if (d.vocab_size < 256 + 16) fail(rd.src, k + " must be at least 272 (256 bytes + special tokens + merges), got " + std::to_string(d.vocab_size));
  };
  t["max_text_bytes"] = [&rd, &d](const YAML::Node& n, const std::string& k) { d.max_text_bytes = rd.integer(n, k, Range::nonnegative); };
  return t;
}

KeyTable train_keys(const Reader& rd, TrainConfig& c) {
  KeyTable t;
  auto i64 = [&](const char* name, int64_t& field, Range r) {
    t[name] = [&rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.integer(n, k, r); };
  };
  auto f64 = [&](const char* name, double& field, Range r) {
    t[name] = [&rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.number(n, k, r); };
  };
  t["seed"] = [&rd, &c](const YAML::Node& n, const std::string& k) { c.seed = (uint64_t)rd.integer(n, k, Range::nonnegative); };
  i64("batch_size", c.batch_size, Range::positive);
  i64("seq_len", c.seq_len, Range::positive);
  i64("steps", c.steps, Range::positive);
  f64("lr", c.lr, Range::positive);
  f64("min_lr", c.min_lr, Range::nonnegative);
  i64("warmup_steps", c.warmup_steps, Range::nonnegative);
  f64("weight_decay", c.weight_decay, Range::nonnegative);
  f64("grad_clip", c.grad_clip, Range::nonnegative);
  i64("grad_accum", c.grad_accum, Range::positive);
  f64("mtp_lambda", c.mtp_lambda, Range::nonnegative);
  f64("balance_alpha", c.balance_alpha, Range::nonnegative);
  f64("bias_gamma", c.bias_gamma, Range::nonnegative);
  i64("dsa_warmup_steps", c.dsa_warmup_steps, Range::nonnegative);
  f64("indexer_loss_weight", c.indexer_loss_weight, Range::nonnegative);
  i64("eval_every", c.eval_every, Range::nonnegative);
  i64("eval_batches", c.eval_batches, Range::positive);
  i64("checkpoint_every", c.checkpoint_every, Range::nonnegative);
  t["out_dir"] = [&rd, &c](const YAML::Node& n, const std::string& k) { c.out_dir = rd.string(n, k); };
  i64("threads", c.threads, Range::positive);
  i64("sample_tokens", c.sample_tokens, Range::nonnegative);
  t["data"] = [&rd, &c](const YAML::Node& n, const std::string& k) { read_section(rd, n, k, data_keys(rd, c.data)); };
  return t;
}

}  // namespace

PretrainConfig parse_pretrain_config(const std::string& yaml_text, const std::string& source) {
  Reader rd{source};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail(source, "YAML syntax error at line " + std::to_string(e.mark.line + 1) + ", column " +
                     std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  PretrainConfig cfg;
  cfg.source = source;
  cfg.name = std::filesystem::path(source).stem().string();
  if (!root.IsMap()) fail(source, "the file must be a map with the sections 'model' and 'train'");
  bool has_model = false;
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string k = it->first.as<std::string>();
    if (k == "model") {
      read_section(rd, it->second, "model", model_keys(rd, cfg.model));
      has_model = true;
    } else if (k == "train") {
      read_section(rd, it->second, "train", train_keys(rd, cfg.train));
    } else {
      fail(source, "key '" + k + "' is not a known key (the sections are 'model' and 'train')");
    }
  }
  if (!has_model) fail(source, "no 'model' section");
  const TrainConfig& t = cfg.train;
  if (t.min_lr > t.lr) fail(source, "train.min_lr (" + std::to_string(t.min_lr) + ") must be <= train.lr (" + std::to_string(t.lr) + ")");
  if (t.warmup_steps > t.steps)
    fail(source, "train.warmup_steps (" + std::to_string(t.warmup_steps) + ") must be <= train.steps (" + std::to_string(t.steps) + ")");
  if (t.dsa_warmup_steps > 0 && cfg.model.index_topk <= 0)
    fail(source, "train.dsa_warmup_steps needs a DSA model (model.index_topk > 0)");
  if (t.dsa_warmup_steps >= t.steps && t.dsa_warmup_steps > 0)
    fail(source, "train.dsa_warmup_steps (" + std::to_string(t.dsa_warmup_steps) + ") must be < train.steps (" + std::to_string(t.steps) + ")");
  if (t.data.dir.empty() && t.data.source == "text" && t.data.text_path.empty()) fail(source, "train.data.text_path is required when train.data.source is 'text'");
  if (t.seq_len > cfg.model.max_seq_len)
    fail(source, "train.seq_len (" + std::to_string(t.seq_len) + ") must be <= model.max_seq_len (" + std::to_string(cfg.model.max_seq_len) + ")");
  // The model's vocabulary comes from the tokenizer; validate with the target so the check is meaningful.
  ModelArgs probe = cfg.model;
  probe.vocab_size = t.data.vocab_size;
  probe.validate(source);
  return cfg;
}

PretrainConfig load_pretrain_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_pretrain_config(ss.str(), path);
}

}  // namespace sg
