// tests/data/test_prepare_atomic.cpp — issue 12, "nothing lost", for prepare_data / open_prepared
// (train/data_prep.h):
//   * prepare.json's manifest lists every file with its size and checksum; open_prepared names a truncated,
//     changed or missing file and a shard that is not listed (before: a missing shard was silently skipped);
//   * a killed prepare, simulated by leaving its temporaries as a kill at each point would: a partial
//     DIR.prepare-tmp (the old dataset still opens, the next prepare removes it), and DIR moved to
//     DIR.prepare-old between the two renames (open_prepared / the next prepare put it back);
//   * re-preparing keeps DIR's other files, replaces the shards as a whole (no shard of an older, longer
//     run survives), and refuses a --out that is not a dataset or that names an input;
//   * a preparation made before the manifest existed still opens.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "data/shards.h"
#include "models/json.h"
#include "tests/data/temp_dir.h"
#include "train/data_prep.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// A small generated corpus in several shards per split.
PrepareOptions small_options(const std::string& out, uint64_t seed = 1) {
  PrepareOptions o;
  o.generated_stories = 40;
  o.seed = seed;
  o.vocab_size = 300;
  o.val_fraction = 0.2;
  o.shard_tokens = 1500;
  o.out_dir = out;
  return o;
}

void check_no_leftovers(const std::string& dir) {
  CHECK_FALSE(fs::exists(dir + ".prepare-tmp"));
  CHECK_FALSE(fs::exists(dir + ".prepare-old"));
}

}  // namespace

TEST_CASE("prepare: the manifest lists every file; open_prepared names a truncated, changed, missing or extra file") {
  TempDir tmp("prepare_manifest");
  const std::string d = tmp.file("d");
  PrepareResult r = prepare_data(small_options(d));
  REQUIRE(r.train_shards.size() >= 3);
  CHECK(r.train_shards[0] == d + "/train/shard_00000.bin");  // the paths are DIR's, not the temporary's
  check_no_leftovers(d);
  Json meta = Json::parse(slurp(d + "/prepare.json"), "prepare.json");
  const Json& files = meta.at("files");
  CHECK((int64_t)files.size() == 1 + (int64_t)r.train_shards.size() + (int64_t)r.val_shards.size());
  CHECK(files[0].at("path").get_string() == "tokenizer.bpe");
  CHECK(files[0].at("bytes").get_int() == (int64_t)fs::file_size(d + "/tokenizer.bpe"));
  CHECK(files[0].at("fnv1a64").get_string().size() == 18);  // "0x" and 16 hex digits (data::hash_hex)
  CHECK(open_prepared(d).train_tokens == r.n_train_tokens);

  const std::string shard = r.train_shards[1], bytes = slurp(shard);
  // Truncated: named with both sizes.
  spit(shard, bytes.substr(0, bytes.size() - 7));
  std::string e = error_of([&] { open_prepared(d); });
  CHECK(e.find("[prepare] " + shard + ": " + std::to_string(bytes.size() - 7) + " bytes but") == 0);
  CHECK(e.find("truncated") != std::string::npos);
  // Same size, one byte changed: the checksum.
  std::string changed = bytes;
  changed[changed.size() - 1] ^= 0x5a;
  spit(shard, changed);
  CHECK(error_of([&] { open_prepared(d); }).find("[prepare] " + shard + ": checksum") == 0);
  // Missing (before the manifest, the shard list simply had a hole).
  fs::remove(shard);
  CHECK(error_of([&] { open_prepared(d); }).find("[prepare] " + shard + ": missing") == 0);
  spit(shard, bytes);
  CHECK(open_prepared(d).train_tokens == r.n_train_tokens);
  // A shard that is not part of this preparation.
  fs::copy_file(shard, d + "/train/shard_00099.bin");
  CHECK(error_of([&] { open_prepared(d); }).find("[prepare] " + d + "/train/shard_00099.bin: not listed") == 0);
  fs::remove(d + "/train/shard_00099.bin");
  // A damaged tokenizer is named by the manifest too.
  spit(d + "/tokenizer.bpe", "x");
  CHECK(error_of([&] { open_prepared(d); }).find("[prepare] " + d + "/tokenizer.bpe: 1 bytes but") == 0);

  // A preparation made before the manifest existed (no "files") opens as before.
  const std::string d2 = tmp.file("d2");
  prepare_data(small_options(d2));
  Json old_meta = Json::parse(slurp(d2 + "/prepare.json"), "prepare.json");
  Json stripped = Json::object();
  for (const auto& [k, v] : old_meta.items())
    if (k != "files") stripped.set(k, v);
  spit(d2 + "/prepare.json", stripped.dump(2));
  CHECK(open_prepared(d2).train_tokens == r.n_train_tokens);
}

TEST_CASE("prepare: a killed prepare leaves the old dataset or the new one, and the next run cleans up") {
  TempDir tmp("prepare_killed");
  const std::string d = tmp.file("d");
  prepare_data(small_options(d, 1));
  const std::string sig1 = open_prepared(d).signature, tok1 = slurp(d + "/tokenizer.bpe");

  // Killed while writing the new one: a partial DIR.prepare-tmp. The old dataset is untouched and opens.
  fs::create_directories(d + ".prepare-tmp/train");
  spit(d + ".prepare-tmp/tokenizer.bpe", "half a tokenizer");
  spit(d + ".prepare-tmp/train/shard_00000.bin", "half a shard");
  CHECK(open_prepared(d).signature == sig1);
  CHECK(prepared_matches(d, sig1));

  // Killed between the two renames: no DIR, the complete old one at DIR.prepare-old. Opening puts it back.
  fs::rename(d, d + ".prepare-old");
  CHECK(prepared_matches(d, sig1));
  CHECK(fs::is_directory(d));
  fs::rename(d, d + ".prepare-old");
  PreparedData back = open_prepared(d);
  CHECK(back.signature == sig1);
  CHECK(slurp(d + "/tokenizer.bpe") == tok1);

  // Killed after the renames: a leftover DIR.prepare-old next to the new DIR. The next prepare removes
  // both leftovers and writes the new dataset.
  fs::create_directories(d + ".prepare-old/train");
  PrepareResult r2 = prepare_data(small_options(d, 2));
  check_no_leftovers(d);
  CHECK(open_prepared(d).signature == prepare_signature(small_options(d, 2)));
  CHECK(open_prepared(d).train_tokens == r2.n_train_tokens);
}

TEST_CASE("prepare: re-preparing keeps DIR's other files, replaces the shards whole, refuses a non-dataset --out") {
  TempDir tmp("prepare_replace");
  const std::string d = tmp.file("d");
  PrepareOptions many = small_options(d);
  many.shard_tokens = 700;
  PrepareResult r1 = prepare_data(many);
  spit(d + "/notes.txt", "how I made this");
  fs::create_directories(d + "/raw");
  spit(d + "/raw/corpus.txt", "Once upon a time.\n");
  PrepareResult r2 = prepare_data(small_options(d));  // fewer, larger shards
  REQUIRE(r2.train_shards.size() < r1.train_shards.size());
  CHECK(data::list_shards(d + "/train") == r2.train_shards);
  CHECK(slurp(d + "/notes.txt") == "how I made this");
  CHECK(slurp(d + "/raw/corpus.txt") == "Once upon a time.\n");
  CHECK(open_prepared(d).train_tokens == r2.n_train_tokens);

  // An input inside DIR is read before DIR changes, and kept.
  PrepareOptions from_raw = small_options(d);
  from_raw.generated_stories = 0;
  from_raw.text_paths = {d + "/raw/corpus.txt"};
  from_raw.val_fraction = 0;
  CHECK_NOTHROW(prepare_data(from_raw));
  CHECK(Json::parse(slurp(d + "/prepare.json"), "prepare.json").at("signature").get_string() == prepare_signature(from_raw));
  CHECK(slurp(d + "/raw/corpus.txt") == "Once upon a time.\n");

  // A directory that is not a dataset is never replaced; an --out that is an input is refused.
  fs::create_directories(tmp.file("home"));
  spit(tmp.file("home/thesis.tex"), "precious");
  std::string e = error_of([&] { prepare_data(small_options(tmp.file("home"))); });
  CHECK(e.find("[prepare] " + tmp.file("home") + ": exists and is not a prepared dataset") == 0);
  CHECK(slurp(tmp.file("home/thesis.tex")) == "precious");
  CHECK(!fs::exists(tmp.file("home/prepare.json")));
  PrepareOptions self = small_options(d + "/raw/corpus.txt");
  self.text_paths = {d + "/raw/corpus.txt"};
  CHECK(error_of([&] { prepare_data(self); }).find("is a --text file") != std::string::npos);
  CHECK(slurp(d + "/raw/corpus.txt") == "Once upon a time.\n");
}
