// tests/tools/test_cli_sizes.cpp — the built bin/seekgrad on configs whose sizes do not fit (models/config.h
// model_size, check_model_fits_memory): `seekgrad train` with a model `dim` of 2^62 (was a segfault, rc 139) or
// INT64_MAX (was an endless loop in the allocator's size classes), with a model too big for this machine's memory,
// and `seekgrad import` of an HF config.json with hidden_size 2^62 (a segfault). Each exits 1 with an error naming
// the file and the key, before any data is prepared or any weight allocated. Every run is under `timeout`, so a
// regression fails the test instead of hanging it.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "models/json.h"
#include "tests/data/temp_dir.h"
#include "tests/test_util.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
using sg::test::contains;
namespace fs = std::filesystem;

namespace {

std::string seekgrad_binary() {
#ifdef SEEKGRAD_BINARY_DIR
  fs::path p = fs::path(SEEKGRAD_BINARY_DIR) / "bin" / "seekgrad";
  if (fs::exists(p)) return p.string();
#endif
  return "";
}

// (exit status, stdout + stderr) of a shell command; -1 when it did not exit normally.
std::pair<int, std::string> run_shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The micro config of test_cli.cpp's train runs, with `model_lines` (dim and others) added to its model section.
std::string write_config(const TempDir& tmp, const std::string& name, const std::string& model_lines) {
  const std::string path = tmp.file(name + ".yaml");
  std::ofstream(path) << "model:\n" << model_lines
                      << "  n_layers: 1\n  n_dense_layers: 1\n  n_heads: 2\n  q_lora_rank: 0\n  kv_lora_rank: 8\n"
                         "  qk_nope_head_dim: 8\n  qk_rope_head_dim: 4\n  v_head_dim: 8\n  max_batch_size: 2\n"
                         "  max_seq_len: 16\n  original_seq_len: 16\n"
                         "train:\n  batch_size: 2\n  seq_len: 16\n  steps: 1\n  warmup_steps: 0\n  threads: 1\n"
                         "  eval_every: 0\n  eval_batches: 1\n  sample_tokens: 0\n  out_dir: " << tmp.file(name) << "\n"
                         "  data: {source: generated, n_stories: 40, vocab_size: 300}\n";
  return path;
}

}  // namespace

TEST_CASE("seekgrad train / import: a dim of 2^62 or INT64_MAX, or a model past the memory, exits 1 naming the key") {
  const std::string bin = seekgrad_binary();
  REQUIRE_MESSAGE(!bin.empty(), "bin/seekgrad is not built (the build makes it with test_tools)");
  TempDir tmp("cli_sizes");
  const std::string run = "timeout 30 " + bin;
  struct Case {
    const char* name;
    const char* model_lines;
    const char* expected;
  };
  for (const Case& c : {
           Case{"dim2p62", "  dim: 4611686018427387904\n  inter_dim: 32\n",
                ": vocab_size 300 × dim (HF hidden_size) 4611686018427387904 (the embedding): the element count overflows int64"},
           Case{"dimmax", "  dim: 9223372036854775807\n  inter_dim: 32\n",
                ": vocab_size 300 × dim (HF hidden_size) 9223372036854775807 (the embedding): the element count overflows int64"},
           // 2^40 × 2^12 f32 = 16 PiB for one FFN weight: no product overflows, no machine has the memory
           Case{"huge", "  dim: 4096\n  inter_dim: 1099511627776\n",
                ": inter_dim (HF intermediate_size) 1099511627776 × dim (HF hidden_size) 4096 (a dense block's w1, w2 or w3) "
                "needs 18014398509481984 bytes (16.0 PiB) at 4 bytes an element, more than the "},
       }) {
    const std::string name = c.name;
    CAPTURE(name);
    const std::string cfg = write_config(tmp, c.name, c.model_lines);
    auto [rc, out] = run_shell(run + " train --config " + cfg);
    CHECK_MESSAGE(rc == 1, out);
    CHECK_MESSAGE(contains(out, "[config] " + cfg + c.expected), out);
    CHECK_MESSAGE(!contains(out, "core dumped"), out);
    CHECK_MESSAGE(!fs::exists(fs::path(tmp.file(c.name)) / "data"), "data was prepared before the config was refused");
  }

  // `seekgrad import` of the fixture with hidden_size 2^62 in its config.json.
  const std::string hf = tmp.file("hf");
  fs::create_directories(hf);
  Json config = Json::parse(slurp(sg::test::kFixtures + "config.json"), "config.json");
  config.set("hidden_size", Json((int64_t)1 << 62));
  spit(hf + "/config.json", config.dump());
  fs::copy_file(sg::test::kFixtures + "model.safetensors", hf + "/model.safetensors");
  auto [rc, out] = run_shell(run + " import --from " + hf + " --out " + tmp.file("imported"));
  CHECK_MESSAGE(rc == 1, out);
  CHECK_MESSAGE(contains(out, "[config] " + hf + "/config.json: vocab_size 512 × dim (HF hidden_size) 4611686018427387904 "
                              "(the embedding): the element count overflows int64"), out);
  CHECK(!fs::exists(tmp.file("imported")));
}
