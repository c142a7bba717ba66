// train/config_yaml.cpp — see config_yaml.h. One table of keys per section: each entry parses its
// scalar strictly (the whole string must be the number) and checks its range. The model section's
// keys, types and ranges come from model_arg_fields() (models/config.h).
#include "train/config_yaml.h"

#include "data/chat.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
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

// A key given twice in one map: YAML says keys are unique, yaml-cpp keeps both, and the last would silently win.
void check_unique_key(const Reader& rd, std::set<std::string>& seen, const std::string& k, const std::string& dotted,
                      const YAML::Node& key_node) {
  if (!seen.insert(k).second)
    fail(rd.src, "key '" + dotted + "' appears twice (line " + std::to_string(key_node.Mark().line + 1) +
                     " repeats it); give each key once");
}

// A map key as a name. YAML allows a map or a list as a key ("? a: 1" / ": 2"); yaml-cpp's as<std::string>()
// then throws a bare "bad conversion" that names neither the file nor the key, so it is checked here.
std::string key_name(const Reader& rd, const YAML::Node& key, const std::string& section) {
  if (key.IsMap() || key.IsSequence())
    fail(rd.src, "line " + std::to_string(key.Mark().line + 1) + ", column " + std::to_string(key.Mark().column + 1) +
                     ": a " + (key.IsMap() ? "map" : "list") + " used as a key" +
                     (section.empty() ? std::string() : " in '" + section + "'") +
                     " (keys are plain names, as in 'dim: 64')");
  return key.as<std::string>();
}

// Applies `table` to every key of the map `node` (named `section` in errors).
void read_section(const Reader& rd, const YAML::Node& node, const std::string& section, const KeyTable& table) {
  if (!node.IsMap()) fail(rd.src, "'" + section + "' must be a map of key: value");
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string k = key_name(rd, it->first, section);
    std::string dotted = section + "." + k;
    check_unique_key(rd, seen, k, dotted, it->first);
    auto f = table.find(k);
    if (f == table.end()) fail(rd.src, "key '" + dotted + "' is not a known key");
    f->second(it->second, dotted);
  }
}

// The model section: every entry of model_arg_fields() (models/config.h), read by its type and range.
KeyTable model_keys(const Reader& rd, ModelArgs& a) {
  KeyTable t;
  for (const ModelArgField& f : model_arg_fields()) {
    const Range r = f.range == ArgRange::positive ? Range::positive : f.range == ArgRange::nonnegative ? Range::nonnegative : Range::any;
    t[f.name] = [&rd, &a, &f, r](const YAML::Node& n, const std::string& k) {
      switch (f.type) {
        case ArgType::i64: a.*f.i64 = rd.integer(n, k, r); break;
        case ArgType::f64: a.*f.f64 = rd.number(n, k, r); break;
        case ArgType::boolean: a.*f.boolean = rd.boolean(n, k); break;
        case ArgType::string: {
          std::string v = rd.string(n, k);
          if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
            std::string allowed;
            for (size_t i = 0; i < f.choices.size(); i++)
              allowed += (i == 0 ? "" : i + 1 == f.choices.size() ? " or " : ", ") + ("'" + f.choices[i] + "'");
            fail(rd.src, k + " must be " + allowed + ", got '" + v + "'");
          }
          a.*f.string = v;
          break;
        }
      }
    };
  }
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
  t["arithmetic_problems"] = [&rd, &d](const YAML::Node& n, const std::string& k) { d.arithmetic_problems = rd.integer(n, k, Range::nonnegative); };
  t["arithmetic_solution"] = [&rd, &d](const YAML::Node& n, const std::string& k) {
    d.arithmetic_solution = rd.string(n, k);
    if (d.arithmetic_solution != "steps" && d.arithmetic_solution != "columns")
      fail(rd.src, k + " must be 'steps' or 'columns', got '" + d.arithmetic_solution + "'");
  };
  t["arithmetic_level"] = [&rd, &d](const YAML::Node& n, const std::string& k) {
    d.arithmetic_level = rd.integer(n, k, Range::positive);
    if (d.arithmetic_level > 3) fail(rd.src, k + " must be 1, 2 or 3, got " + std::to_string(d.arithmetic_level));
  };
  return t;
}

// Small helpers shared by the post-training sections: one line per key.
struct KeyAdder {
  const Reader& rd;
  KeyTable& t;
  void i64(const char* name, int64_t& field, Range r) {
    t[name] = [&rd = rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.integer(n, k, r); };
  }
  void f64(const char* name, double& field, Range r) {
    t[name] = [&rd = rd, &field, r](const YAML::Node& n, const std::string& k) { field = rd.number(n, k, r); };
  }
  void str(const char* name, std::string& field, std::vector<std::string> choices = {}) {
    t[name] = [&rd = rd, &field, choices](const YAML::Node& n, const std::string& k) {
      field = rd.string(n, k);
      if (!choices.empty() && std::find(choices.begin(), choices.end(), field) == choices.end()) {
        std::string allowed;
        for (size_t i = 0; i < choices.size(); i++) allowed += (i ? " or '" : "'") + choices[i] + "'";
        fail(rd.src, k + " must be " + allowed + ", got '" + field + "'");
      }
    };
  }
};

KeyTable reasoning_keys(const Reader& rd, ReasoningConfig& c) {
  KeyTable t;
  KeyAdder a{rd, t};
  t["level"] = [&rd, &c](const YAML::Node& n, const std::string& k) {
    c.level = rd.integer(n, k, Range::positive);
    if (c.level > 3) fail(rd.src, k + " must be 1, 2 or 3, got " + std::to_string(c.level));
  };
  a.i64("eval_problems", c.eval_problems, Range::positive);
  a.i64("eval_samples", c.eval_samples, Range::positive);
  a.f64("eval_temperature", c.eval_temperature, Range::nonnegative);
  a.i64("max_new_tokens", c.max_new_tokens, Range::positive);
  t["seed"] = [&rd, &c](const YAML::Node& n, const std::string& k) { c.seed = (uint64_t)rd.integer(n, k, Range::nonnegative); };
  a.str("solution", c.solution, {"steps", "columns"});
  a.str("system", c.system);
  return t;
}

KeyTable sft_keys(const Reader& rd, SftConfig& c) {
  KeyTable t;
  KeyAdder a{rd, t};
  a.i64("n_problems", c.n_problems, Range::positive);
  a.i64("steps", c.steps, Range::positive);
  a.i64("batch_size", c.batch_size, Range::positive);
  a.i64("seq_len", c.seq_len, Range::positive);
  a.i64("grad_accum", c.grad_accum, Range::positive);
  a.f64("lr", c.lr, Range::positive);
  a.f64("min_lr", c.min_lr, Range::nonnegative);
  a.i64("warmup_steps", c.warmup_steps, Range::nonnegative);
  a.f64("weight_decay", c.weight_decay, Range::nonnegative);
  a.f64("grad_clip", c.grad_clip, Range::nonnegative);
  a.f64("mtp_lambda", c.mtp_lambda, Range::nonnegative);
  a.f64("balance_alpha", c.balance_alpha, Range::nonnegative);
  a.f64("bias_gamma", c.bias_gamma, Range::nonnegative);
  a.i64("eval_every", c.eval_every, Range::nonnegative);
  a.i64("eval_problems", c.eval_problems, Range::positive);
  a.i64("checkpoint_every", c.checkpoint_every, Range::nonnegative);
  a.str("out_dir", c.out_dir);
  a.str("data", c.data);
  return t;
}

KeyTable grpo_keys(const Reader& rd, GrpoConfig& c) {
  KeyTable t;
  KeyAdder a{rd, t};
  a.str("init", c.init, {"sft", "pretrain"});
  a.i64("steps", c.steps, Range::positive);
  a.i64("prompts_per_step", c.prompts_per_step, Range::positive);
  a.i64("group_size", c.group_size, Range::positive);
  a.i64("inner_iterations", c.inner_iterations, Range::positive);
  a.f64("clip_eps", c.clip_eps, Range::positive);
  a.f64("kl_beta", c.kl_beta, Range::nonnegative);
  a.str("norm", c.norm, {"sequence", "token"});
  a.f64("temperature", c.temperature, Range::positive);
  a.f64("top_p", c.top_p, Range::unit);
  a.f64("accuracy_weight", c.accuracy_weight, Range::nonnegative);
  a.f64("format_weight", c.format_weight, Range::nonnegative);
  a.f64("lr", c.lr, Range::positive);
  a.f64("min_lr", c.min_lr, Range::nonnegative);
  a.i64("warmup_steps", c.warmup_steps, Range::nonnegative);
  a.f64("weight_decay", c.weight_decay, Range::nonnegative);
  a.f64("grad_clip", c.grad_clip, Range::nonnegative);
  a.i64("eval_every", c.eval_every, Range::nonnegative);
  a.i64("eval_problems", c.eval_problems, Range::positive);
  a.i64("checkpoint_every", c.checkpoint_every, Range::nonnegative);
  a.str("out_dir", c.out_dir);
  return t;
}

KeyTable dpo_keys(const Reader& rd, DpoConfig& c) {
  KeyTable t;
  KeyAdder a{rd, t};
  a.str("init", c.init, {"sft", "pretrain"});
  a.i64("steps", c.steps, Range::positive);
  a.i64("pairs_per_step", c.pairs_per_step, Range::positive);
  a.f64("beta", c.beta, Range::positive);
  a.i64("sample_prompts", c.sample_prompts, Range::positive);
  a.i64("group_size", c.group_size, Range::positive);
  a.f64("temperature", c.temperature, Range::positive);
  a.f64("accuracy_weight", c.accuracy_weight, Range::nonnegative);
  a.f64("format_weight", c.format_weight, Range::nonnegative);
  a.str("pairs_file", c.pairs_file);
  a.f64("lr", c.lr, Range::positive);
  a.f64("min_lr", c.min_lr, Range::nonnegative);
  a.i64("warmup_steps", c.warmup_steps, Range::nonnegative);
  a.f64("weight_decay", c.weight_decay, Range::nonnegative);
  a.f64("grad_clip", c.grad_clip, Range::nonnegative);
  a.i64("eval_every", c.eval_every, Range::nonnegative);
  a.i64("eval_problems", c.eval_problems, Range::positive);
  a.i64("checkpoint_every", c.checkpoint_every, Range::nonnegative);
  a.str("out_dir", c.out_dir);
  return t;
}

KeyTable distill_keys(const Reader& rd, DistillConfig& c) {
  KeyTable t;
  KeyAdder a{rd, t};
  // The student's ModelArgs overrides, kept as written: they apply to the teacher's args (distill_student_args).
  t["student"] = [&rd, &c](const YAML::Node& n, const std::string& k) {
    if (!n.IsMap()) fail(rd.src, "'" + k + "' must be a map of ModelArgs key: value (e.g. {n_layers: 1, dim: 64})");
    std::set<std::string> seen;
    c.student.clear();
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      check_unique_key(rd, seen, key, k + "." + key, it->first);
      c.student.emplace_back(key, rd.scalar(it->second, k + "." + key, "a value"));
    }
  };
  a.i64("n_problems", c.n_problems, Range::positive);
  a.i64("steps", c.steps, Range::positive);
  a.i64("batch_size", c.batch_size, Range::positive);
  a.i64("seq_len", c.seq_len, Range::positive);
  a.f64("lr", c.lr, Range::positive);
  a.f64("min_lr", c.min_lr, Range::nonnegative);
  a.i64("warmup_steps", c.warmup_steps, Range::nonnegative);
  a.f64("weight_decay", c.weight_decay, Range::nonnegative);
  a.f64("grad_clip", c.grad_clip, Range::nonnegative);
  a.f64("balance_alpha", c.balance_alpha, Range::nonnegative);
  a.f64("bias_gamma", c.bias_gamma, Range::nonnegative);
  a.f64("temperature", c.temperature, Range::positive);
  a.f64("kd_weight", c.kd_weight, Range::unit);
  a.i64("trace_prompts", c.trace_prompts, Range::positive);
  a.i64("trace_samples", c.trace_samples, Range::positive);
  a.f64("trace_temperature", c.trace_temperature, Range::positive);
  a.i64("eval_every", c.eval_every, Range::nonnegative);
  a.i64("eval_problems", c.eval_problems, Range::positive);
  a.i64("checkpoint_every", c.checkpoint_every, Range::nonnegative);
  a.str("out_dir", c.out_dir);
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
  KeyAdder{rd, t}.str("moments", c.moments, {"f32", "bf16"});
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
  KeyAdder{rd, t}.str("device", c.device, {"cpu", "cuda"});
  i64("sample_tokens", c.sample_tokens, Range::nonnegative);
  t["data"] = [&rd, &c](const YAML::Node& n, const std::string& k) { read_section(rd, n, k, data_keys(rd, c.data)); };
  return t;
}

}  // namespace

ModelArgs distill_student_args(const ModelArgs& teacher, const DistillConfig& c, const std::string& source) {
  Reader rd{source};
  ModelArgs a = teacher;
  a.n_mtp_modules = 0;  // the student trains its next-token head only
  const KeyTable table = model_keys(rd, a);
  for (const auto& [key, value] : c.student) {
    const std::string dotted = "distill.student." + key;
    if (key == "vocab_size") fail(source, dotted + ": the student keeps the teacher's vocabulary (its tokenizer)");
    if (key == "n_mtp_modules") fail(source, dotted + ": the student has no MTP modules (distillation trains the next-token head)");
    auto f = table.find(key);
    if (f == table.end()) fail(source, "key '" + dotted + "' is not a known key (ModelArgs names, models/config.h)");
    f->second(YAML::Node(value), dotted);
  }
  a.validate(source + ": distill.student");
  return a;
}

std::string ReasoningConfig::system_prompt() const { return system.empty() ? std::string(data::kReasoningSystemPrompt) : system; }

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
  std::set<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string k = key_name(rd, it->first, "");
    check_unique_key(rd, seen, k, k, it->first);
    if (k == "model") {
      read_section(rd, it->second, "model", model_keys(rd, cfg.model));
      has_model = true;
    } else if (k == "train") {
      read_section(rd, it->second, "train", train_keys(rd, cfg.train));
    } else if (k == "reasoning") {
      read_section(rd, it->second, "reasoning", reasoning_keys(rd, cfg.reasoning));
    } else if (k == "sft") {
      read_section(rd, it->second, "sft", sft_keys(rd, cfg.sft));
      cfg.sft.enabled = true;
    } else if (k == "grpo") {
      read_section(rd, it->second, "grpo", grpo_keys(rd, cfg.grpo));
      cfg.grpo.enabled = true;
    } else if (k == "dpo") {
      read_section(rd, it->second, "dpo", dpo_keys(rd, cfg.dpo));
      cfg.dpo.enabled = true;
    } else if (k == "distill") {
      read_section(rd, it->second, "distill", distill_keys(rd, cfg.distill));
      cfg.distill.enabled = true;
    } else {
      fail(source, "key '" + k + "' is not a known key (the sections are 'model', 'train', 'reasoning', 'sft', 'grpo', 'dpo' and 'distill')");
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
  const SftConfig& sf = cfg.sft;
  if (sf.enabled) {
    if (sf.min_lr > sf.lr) fail(source, "sft.min_lr must be <= sft.lr");
    if (sf.warmup_steps > sf.steps) fail(source, "sft.warmup_steps (" + std::to_string(sf.warmup_steps) + ") must be <= sft.steps (" + std::to_string(sf.steps) + ")");
    if (sf.seq_len > cfg.model.max_seq_len)
      fail(source, "sft.seq_len (" + std::to_string(sf.seq_len) + ") must be <= model.max_seq_len (" + std::to_string(cfg.model.max_seq_len) + ")");
  }
  const GrpoConfig& g = cfg.grpo;
  if (g.enabled) {
    if (g.min_lr > g.lr) fail(source, "grpo.min_lr must be <= grpo.lr");
    if (g.warmup_steps > g.steps) fail(source, "grpo.warmup_steps (" + std::to_string(g.warmup_steps) + ") must be <= grpo.steps (" + std::to_string(g.steps) + ")");
    if (g.group_size < 2) fail(source, "grpo.group_size must be >= 2 (advantages are relative to the group), got " + std::to_string(g.group_size));
    if (g.clip_eps >= 1) fail(source, "grpo.clip_eps must be in (0, 1), got " + std::to_string(g.clip_eps));
    if (g.top_p <= 0) fail(source, "grpo.top_p must be in (0, 1], got " + std::to_string(g.top_p));
    if (g.init == "sft" && !sf.enabled) fail(source, "grpo.init is 'sft' but the config has no 'sft' section (use init: pretrain for R1-Zero)");
  }
  const DpoConfig& d = cfg.dpo;
  if (d.enabled) {
    if (d.min_lr > d.lr) fail(source, "dpo.min_lr must be <= dpo.lr");
    if (d.warmup_steps > d.steps) fail(source, "dpo.warmup_steps (" + std::to_string(d.warmup_steps) + ") must be <= dpo.steps (" + std::to_string(d.steps) + ")");
    if (d.group_size < 2 && d.pairs_file.empty())
      fail(source, "dpo.group_size must be >= 2 (a pair needs a correct and a wrong completion of one prompt), got " + std::to_string(d.group_size));
    if (d.init == "sft" && !sf.enabled) fail(source, "dpo.init is 'sft' but the config has no 'sft' section (use init: pretrain)");
  }
  // The model's vocabulary comes from the tokenizer; validate with the target so the check is meaningful.
  ModelArgs probe = cfg.model;
  probe.vocab_size = t.data.vocab_size;
  probe.validate(source);
  const DistillConfig& ds = cfg.distill;
  if (ds.enabled) {
    if (ds.min_lr > ds.lr) fail(source, "distill.min_lr must be <= distill.lr");
    if (ds.warmup_steps > ds.steps) fail(source, "distill.warmup_steps (" + std::to_string(ds.warmup_steps) + ") must be <= distill.steps (" + std::to_string(ds.steps) + ")");
    if (ds.seq_len > cfg.model.max_seq_len)
      fail(source, "distill.seq_len (" + std::to_string(ds.seq_len) + ") must be <= model.max_seq_len (" + std::to_string(cfg.model.max_seq_len) + ")");
    const ModelArgs student = distill_student_args(probe, ds, source);  // every override read and the shape checked now
    if (ds.seq_len > student.max_seq_len)
      fail(source, "distill.seq_len (" + std::to_string(ds.seq_len) + ") must be <= distill.student.max_seq_len (" + std::to_string(student.max_seq_len) + ")");
  }
  return cfg;
}

PretrainConfig load_pretrain_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory; give the YAML config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  PretrainConfig cfg = parse_pretrain_config(ss.str(), path);
  // A config is read to build its model: one that cannot fit (an f32 model, the tokenizer's target vocabulary)
  // is refused here, before any data is prepared. pretrain_model_args checks again with the real vocabulary.
  ModelArgs probe = cfg.model;
  probe.vocab_size = cfg.train.data.vocab_size;
  const int64_t available = available_memory_bytes();
  check_model_fits_memory(probe, path, (int64_t)sizeof(float), available);
  if (cfg.distill.enabled)  // the distillation students, built beside the teacher
    check_model_fits_memory(distill_student_args(probe, cfg.distill, path), path + ": distill.student", (int64_t)sizeof(float),
                            available);
  return cfg;
}

}  // namespace sg
