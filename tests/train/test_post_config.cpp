// tests/train/test_post_config.cpp — the config sections of the post-training stages (reasoning:, sft:, grpo:)
// and the arithmetic text that DATA_PREP mixes into pretraining (train split only, interleaved).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/reasoning.h"
#include "tests/data/temp_dir.h"
#include "train/config_yaml.h"
#include "data/shards.h"
#include "train/data_prep.h"

using namespace sg;

namespace {
const char* kModel = "model: {vocab_size: 512, dim: 32, n_layers: 2, n_heads: 2, kv_lora_rank: 8, qk_nope_head_dim: 8, "
                     "qk_rope_head_dim: 4, v_head_dim: 8, n_routed_experts: 4, n_activated_experts: 2, moe_inter_dim: 16, "
                     "inter_dim: 32, max_seq_len: 64, original_seq_len: 64}\ntrain: {seq_len: 32}\n";
std::string error_of(const std::string& yaml) {
  try {
    parse_pretrain_config(yaml, "x.yaml");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("config: reasoning, sft and grpo sections parse, default, and reject bad values by name") {
  PretrainConfig c = parse_pretrain_config(std::string(kModel), "x.yaml");
  CHECK(!c.sft.enabled);
  CHECK(!c.grpo.enabled);
  CHECK(c.reasoning.level == 1);
  c = parse_pretrain_config(std::string(kModel) +
                                "reasoning: {level: 2, eval_problems: 50, eval_temperature: 0.0}\n"
                                "sft: {steps: 20, lr: 1.0e-3, seq_len: 64}\n"
                                "grpo: {steps: 10, group_size: 4, inner_iterations: 2, norm: token, init: sft}\n",
                            "x.yaml");
  CHECK(c.reasoning.level == 2);
  CHECK(c.reasoning.eval_problems == 50);
  CHECK(c.sft.enabled);
  CHECK(c.sft.steps == 20);
  CHECK(c.grpo.enabled);
  CHECK(c.grpo.group_size == 4);
  CHECK(c.grpo.inner_iterations == 2);
  CHECK(c.grpo.norm == "token");

  CHECK(error_of(std::string(kModel) + "grpo: {group_size: 1, init: pretrain}\n").find("grpo.group_size must be >= 2") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "grpo: {norm: tokens, init: pretrain}\n").find("grpo.norm must be 'sequence' or 'token', got 'tokens'") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "grpo: {steps: 5}\n").find("grpo.init is 'sft' but the config has no 'sft' section") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "sft: {stepz: 5, seq_len: 64}\n").find("key 'sft.stepz' is not a known key") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "reasoning: {level: 4}\n").find("reasoning.level must be 1, 2 or 3") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "sft: {seq_len: 100}\n").find("sft.seq_len (100) must be <= model.max_seq_len (64)") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "rl: {}\n").find("key 'rl' is not a known key") != std::string::npos);

  c = parse_pretrain_config(std::string(kModel) + "dpo: {steps: 7, beta: 0.2, sample_prompts: 30, group_size: 3, init: pretrain}\n", "x.yaml");
  CHECK(c.dpo.enabled);
  CHECK(c.dpo.steps == 7);
  CHECK(c.dpo.beta == 0.2);
  CHECK(c.dpo.sample_prompts == 30);
  CHECK(c.dpo.group_size == 3);
  CHECK(c.dpo.pairs_per_step == 8);  // the default
  CHECK(error_of(std::string(kModel) + "dpo: {group_size: 1, init: pretrain}\n").find("dpo.group_size must be >= 2") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "dpo: {beta: 0, init: pretrain}\n").find("dpo.beta") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "dpo: {steps: 5}\n").find("dpo.init is 'sft' but the config has no 'sft' section") != std::string::npos);
  CHECK(error_of(std::string(kModel) + "dpo: {betta: 0.1, init: pretrain}\n").find("key 'dpo.betta' is not a known key") != std::string::npos);
}

TEST_CASE("data_prep: worked arithmetic joins the corpus — train-split problems only, spread through train and val") {
  data::testing::TempDir dir("sg_arith");
  PrepareOptions o;
  o.generated_stories = 200;
  o.arithmetic_problems = 400;
  o.arithmetic_level = 1;
  o.seed = 3;
  o.vocab_size = 400;
  o.out_dir = dir.file("data");
  PrepareResult r = prepare_data(o);
  PreparedData d = open_prepared(o.out_dir);
  // decode both splits and look at the arithmetic lines
  auto decode_split = [&](const std::vector<std::string>& shards) {
    std::string text;
    for (const std::string& s : shards) {
      std::vector<int32_t> ids = data::read_shard(s);
      text += d.tokenizer.decode(ids);
    }
    return text;
  };
  const std::string train = decode_split(d.train_shards), val = decode_split(d.val_shards);
  auto count_questions = [](const std::string& t, bool check_split) {
    int n = 0;
    size_t at = 0;
    while ((at = t.find("What is ", at)) != std::string::npos) {
      size_t q = t.find('?', at);
      std::string expr = t.substr(at + 8, q - at - 8);
      if (q != std::string::npos && data::reasoning_level(expr) == 1) {  // (stories may ask "What is that?")
        if (check_split) CHECK(data::split_of(expr) == data::Split::train);
        n++;
      }
      at = q == std::string::npos ? t.size() : q;
    }
    return n;
  };
  const int n_train = count_questions(train, true), n_val = count_questions(val, true);
  CHECK(n_train + n_val == 400);
  CHECK(n_val > 0);  // interleaved: the validation part holds arithmetic too
  CHECK(train.find("The answer is ") != std::string::npos);
  CHECK(r.n_train_tokens > 0);
  // the signature changes with the arithmetic, so an old preparation is not reused
  PrepareOptions o2 = o;
  o2.arithmetic_problems = 0;
  CHECK(prepare_signature(o) != prepare_signature(o2));
}

TEST_CASE("configs/*.yaml: every shipped config loads; tiny_dpo.yaml is tiny.yaml plus DPO on GRPO's sampling budget") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(SEEKGRAD_SOURCE_DIR) / "configs";
  int n = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") {
      INFO(e.path().string());
      CHECK_NOTHROW(load_pretrain_config(e.path().string()));
      n++;
    }
  CHECK(n >= 5);
  const PretrainConfig tiny = load_pretrain_config((dir / "tiny.yaml").string());
  const PretrainConfig dpo = load_pretrain_config((dir / "tiny_dpo.yaml").string());
  REQUIRE(dpo.dpo.enabled);
  CHECK(!tiny.dpo.enabled);
  CHECK(dpo.model == tiny.model);
  CHECK(dpo.train.out_dir == tiny.train.out_dir);  // the pretraining, SFT and GRPO of tiny.yaml are reused
  CHECK(dpo.train.steps == tiny.train.steps);
  CHECK(dpo.sft.steps == tiny.sft.steps);
  CHECK(dpo.grpo.steps == tiny.grpo.steps);
  CHECK(dpo.dpo.sample_prompts * dpo.dpo.group_size == tiny.grpo.steps * tiny.grpo.prompts_per_step * tiny.grpo.group_size);
  CHECK(dpo.dpo.steps == tiny.grpo.steps);
}
