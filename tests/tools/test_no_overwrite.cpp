// tests/tools/test_no_overwrite.cpp — issue 12, "nothing lost", for the commands that write model files:
//   * logits / eval --problems: an --out that names an input (the weights, the config, the tokens, the
//     problems file, however spelled) is refused before anything is written, and the input is unchanged;
//     called as library functions and, when the binary is built, through `seekgrad logits`;
//   * export / import into an existing model directory: files they do not write (notes, a README somebody
//     wrote, a subdirectory, a tokenizer.bpe) are kept byte for byte; export --tokenizer replaces the
//     tokenizer (asked for); a kept tokenizer that does not fit the model is an error that changes nothing;
//   * a killed export / import (its temporaries left at each point of replace_dir) loses nothing and is
//     cleaned up by the next run.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "data/generators.h"
#include "data/tokenizer.h"
#include "models/output_paths.h"
#include "models/transformer.h"
#include "tests/data/temp_dir.h"
#include "tools/cli/commands.h"
#include "tools/cli/logits.h"

#ifndef SEEKGRAD_SOURCE_DIR
#define SEEKGRAD_SOURCE_DIR "."
#endif

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/tiny_v2lite";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// (copied from test_cli.cpp) The built seekgrad binary, or "" when it is not built.
std::string binary() {
#ifdef SEEKGRAD_BINARY_DIR
  fs::path p = fs::path(SEEKGRAD_BINARY_DIR) / "bin" / "seekgrad";
  if (fs::exists(p)) return p.string();
#endif
  return "";
}

// (copied from test_cli.cpp) Runs a shell command, returns (exit status, stdout + stderr).
std::pair<int, std::string> run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A copy of the fixture model (config.json, model.safetensors, tokens.json) in dir.
void copy_fixture(const std::string& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokens.json"}) fs::copy_file(kFixture + "/" + f, dir + "/" + f);
}

// The files a user put into a model directory; check_extras says they are all still there, byte for byte.
void add_extras(const std::string& dir) {
  spit(dir + "/notes.txt", "my notes\n");
  spit(dir + "/README.md", "# my own readme\n");
  fs::create_directories(dir + "/other_model");
  spit(dir + "/other_model/config.json", "{\"not\": \"ours\"}\n");
}
void check_extras(const std::string& dir) {
  CHECK(slurp(dir + "/notes.txt") == "my notes\n");
  CHECK(slurp(dir + "/README.md") == "# my own readme\n");
  CHECK(slurp(dir + "/other_model/config.json") == "{\"not\": \"ours\"}\n");
}

// No temporary of replace_dir is left next to dir.
void check_no_leftovers(const std::string& dir) {
  for (const char* s : {".tmp", ".old", ".export.tmp", ".export.old", ".import.tmp", ".import.old"})
    CHECK_MESSAGE(!fs::exists(dir + s), std::string(dir + s));
}

data::Tokenizer tokenizer_with_vocab(int v) { return data::Tokenizer::train(data::generate_story_corpus(5, 300), v); }

}  // namespace

TEST_CASE("logits: --out that names the model's weights, config, directory or the tokens file is refused") {
  TempDir tmp("no_overwrite_logits");
  const std::string m = tmp.file("m");
  copy_fixture(m);
  const std::string weights = slurp(m + "/model.safetensors"), tokens = slurp(m + "/tokens.json");
  struct Case { std::string out, what; };
  for (const Case& c : {Case{m + "/model.safetensors", "the model's weights file"},
                        Case{m + "/./model.safetensors", "the model's weights file"},  // however spelled
                        Case{m + "/config.json", "the model's config"},
                        Case{m, "the model directory"},
                        Case{m + "/tokens.json", "the tokens file"}}) {
    CAPTURE(c.out);
    const std::string e = error_of([&] { run_logits(m + "/", m + "/tokens.json", c.out, false, ""); });
    CHECK(e.find("[logits] --out " + c.out + " is " + c.what) == 0);
    CHECK(e.find("refusing to overwrite an input") != std::string::npos);
  }
  CHECK(slurp(m + "/model.safetensors") == weights);
  CHECK(slurp(m + "/tokens.json") == tokens);
  check_no_leftovers(m + "/model.safetensors");
  // Another --out is written as before.
  CHECK(run_logits(m, m + "/tokens.json", tmp.file("logits.safetensors"), false, "") == 0);
  CHECK(fs::file_size(tmp.file("logits.safetensors")) > 0);

  const std::string bin = binary();
  if (bin.empty()) {
    MESSAGE("seekgrad binary not built: its part of this test is skipped");
    return;
  }
  auto [rc, out] = run_cmd(bin + " logits --model " + m + " --tokens " + m + "/tokens.json --out " + m + "/model.safetensors");
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("is the model's weights file") != std::string::npos, out);
  std::tie(rc, out) = run_cmd(bin + " logits --model " + m + " --tokens " + m + "/tokens.json --out " + m + "/tokens.json");
  CHECK(rc == 1);
  CHECK_MESSAGE(out.find("is the tokens file") != std::string::npos, out);
  CHECK(slurp(m + "/model.safetensors") == weights);
  CHECK(slurp(m + "/tokens.json") == tokens);
}

TEST_CASE("eval --problems: --out that names the model's files or the tokenizer is refused") {
  TempDir tmp("no_overwrite_eval");
  const std::string m = tmp.file("m");
  copy_fixture(m);
  spit(m + "/tokenizer.bpe", "a tokenizer");
  const std::string weights = slurp(m + "/model.safetensors");
  cli::ProblemEvalCliOptions opt;
  opt.model_dir = m;
  opt.problems_path = tmp.file("problems.jsonl");
  std::ostringstream log;
  for (const std::string& out : {m + "/model.safetensors", m + "/config.json", m + "/tokenizer.bpe", m + "/"}) {
    CAPTURE(out);
    opt.out_path = out;
    const std::string e = error_of([&] { cli::run_problem_eval(opt, log); });
    CHECK(e.find("[eval] --out " + out + " is the model") == 0);
    CHECK(e.find("refusing to overwrite an input") != std::string::npos);
  }
  opt.tokenizer_path = tmp.file("tok.bpe");
  opt.out_path = tmp.file("./tok.bpe");
  CHECK(error_of([&] { cli::run_problem_eval(opt, log); }).find("is the tokenizer") != std::string::npos);
  CHECK(slurp(m + "/model.safetensors") == weights);
  CHECK(slurp(m + "/tokenizer.bpe") == "a tokenizer");
}

TEST_CASE("export into an existing model directory keeps what it does not write; --tokenizer replaces by request") {
  TempDir tmp("no_overwrite_export");
  const std::string hf = tmp.file("hf");
  cli::export_hf_model(kFixture, hf);
  CHECK(slurp(hf + "/README.md").starts_with("---\nlibrary_name: seekgrad\n"));  // our model card
  // Before issue 12 a second export replaced the directory as a whole: these were deleted.
  add_extras(hf);
  const data::Tokenizer small = tokenizer_with_vocab(320);
  small.save(hf + "/tokenizer.bpe");
  const std::string tok_bytes = slurp(hf + "/tokenizer.bpe");
  std::ostringstream log;
  cli::ExportResult r = cli::export_hf_model(kFixture, hf + "/", "", &log);
  check_extras(hf);
  CHECK(!r.wrote_readme);  // somebody else's README.md is not replaced by the model card
  CHECK(slurp(hf + "/tokenizer.bpe") == tok_bytes);
  CHECK(log.str().find("kept " + hf + "/README.md") != std::string::npos);
  CHECK(load_model_dir(hf).num_parameters() == r.n_parameters);
  check_no_leftovers(hf);

  // --tokenizer: the tokenizer is written (replaced, asked for); the rest is still kept.
  const data::Tokenizer other = tokenizer_with_vocab(300);
  other.save(tmp.file("other.bpe"));
  cli::export_hf_model(kFixture, hf, tmp.file("other.bpe"));
  CHECK(slurp(hf + "/tokenizer.bpe") == slurp(tmp.file("other.bpe")));
  check_extras(hf);

  // A kept tokenizer that does not fit the model (more ids than its vocab_size): an error, nothing changes.
  const data::Tokenizer big = tokenizer_with_vocab(700);
  REQUIRE(big.vocab_size() > 512);
  big.save(hf + "/tokenizer.bpe");
  const std::string big_bytes = slurp(hf + "/tokenizer.bpe"), weights = slurp(hf + "/model.safetensors");
  const std::string e = error_of([&] { cli::export_hf_model(kFixture, hf); });
  CHECK(e.find("[export] " + hf + "/tokenizer.bpe (already there; kept") == 0);
  CHECK(e.find("give --tokenizer") != std::string::npos);
  CHECK(slurp(hf + "/tokenizer.bpe") == big_bytes);
  CHECK(slurp(hf + "/model.safetensors") == weights);
  check_extras(hf);
  check_no_leftovers(hf);
}

TEST_CASE("import into an existing model directory keeps its tokenizer and other files") {
  TempDir tmp("no_overwrite_import");
  cli::export_hf_model(kFixture, tmp.file("hf"));
  const std::string proj = tmp.file("proj");
  cli::import_hf_model(tmp.file("hf"), proj);
  add_extras(proj);
  tokenizer_with_vocab(320).save(proj + "/tokenizer.bpe");
  const std::string tok_bytes = slurp(proj + "/tokenizer.bpe");
  cli::ImportResult r = cli::import_hf_model(tmp.file("hf"), proj);
  check_extras(proj);
  CHECK(slurp(proj + "/tokenizer.bpe") == tok_bytes);
  CHECK(load_model_dir(proj).num_parameters() == r.n_parameters);
  check_no_leftovers(proj);

  tokenizer_with_vocab(700).save(proj + "/tokenizer.bpe");
  CHECK(error_of([&] { cli::import_hf_model(tmp.file("hf"), proj); }).find("[import] " + proj + "/tokenizer.bpe (already there") == 0);
  check_extras(proj);
  check_no_leftovers(proj);
}

TEST_CASE("a killed export or save_model_dir loses nothing; the next run cleans up after it") {
  TempDir tmp("no_overwrite_killed");
  const std::string hf = tmp.file("hf");
  cli::export_hf_model(kFixture, hf);
  add_extras(hf);
  const std::string weights = slurp(hf + "/model.safetensors");

  // Killed while writing: a partial OUT.export.tmp (and the partial save_model_dir temporary inside it).
  fs::create_directories(hf + ".export.tmp");
  spit(hf + ".export.tmp/model.safetensors", "partial");
  // Killed between replace_dir's two renames: no OUT, the complete old one at OUT.export.old.
  fs::rename(hf, hf + ".export.old");
  cli::export_hf_model(kFixture, hf);
  check_extras(hf);
  CHECK(slurp(hf + "/model.safetensors") == weights);
  check_no_leftovers(hf);

  // The same for save_model_dir (train, sft, grpo write their model directories with it).
  const std::string m = tmp.file("m");
  Transformer model = load_model_dir(kFixture);
  save_model_dir(model, m);
  add_extras(m);
  spit(m + "/tokenizer.bpe", "tok");
  fs::rename(m, m + ".old");
  fs::create_directories(m + ".tmp");
  save_model_dir(model, m + "/");
  check_extras(m);
  CHECK(slurp(m + "/tokenizer.bpe") == "tok");
  check_no_leftovers(m);
  // A plain file where the directory should be is an error, not deleted.
  spit(tmp.file("file"), "data");
  CHECK(error_of([&] { save_model_dir(model, tmp.file("file")); }).find("exists and is not a directory") != std::string::npos);
  CHECK(slurp(tmp.file("file")) == "data");
}

TEST_CASE("same_path / refuse_overwrite: spellings of one path, and paths that do not exist yet") {
  TempDir tmp("no_overwrite_paths");
  spit(tmp.file("a.txt"), "a");
  CHECK(same_path(tmp.file("a.txt"), tmp.file("./a.txt")));
  CHECK(same_path(tmp.file("sub/../a.txt"), tmp.file("a.txt")));
  fs::create_symlink(tmp.file("a.txt"), tmp.file("link.txt"));
  CHECK(same_path(tmp.file("link.txt"), tmp.file("a.txt")));
  CHECK(same_path(tmp.file("new/"), tmp.file("new")));
  CHECK_FALSE(same_path(tmp.file("a.txt"), tmp.file("b.txt")));
  CHECK(error_of([&] { refuse_overwrite("x", "--out", tmp.file("link.txt"), {{tmp.file("a.txt"), "the input"}}) ; })
            .find("[x] --out " + tmp.file("link.txt") + " is the input (" + tmp.file("a.txt") + ")") == 0);
  CHECK(error_of([&] { refuse_overwrite("x", "--out", tmp.file("b.txt"), {{tmp.file("a.txt"), "the input"}, {"", "none"}}); }) ==
        "(no error)");
}
