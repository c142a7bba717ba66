// tests/data/test_data_integrity.cpp — prepared data knows what made it: every shard records the hash of the
// tokenizer that encoded it (shard header version 2) and prepare.json records each shard file's size and FNV-1a
// checksum, so open_prepared() refuses a shard from another tokenizer, a swapped tokenizer.bpe and a flipped byte,
// each naming the file (and both hashes).
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <filesystem>
#include <functional>

#include "data/shards.h"
#include "data/tokenizer.h"
#include "tests/data/temp_dir.h"
#include "train/data_prep.h"

using namespace sg;
using sg::test::contains;
using sg::test::error_of;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;
namespace fs = std::filesystem;

namespace {

PrepareOptions options(const std::string& dir, uint64_t seed) {
  PrepareOptions o;
  o.generated_stories = 60;
  o.seed = seed;
  o.vocab_size = 300;
  o.val_fraction = 0.1;
  o.out_dir = dir;
  return o;
}

}  // namespace

TEST_CASE("prepared data integrity: a shard or a tokenizer from another preparation is named") {
  TempDir tmp("prep_tok");
  const std::string a = tmp.file("a"), b = tmp.file("b");
  prepare_data(options(a, 1));
  prepare_data(options(b, 2));  // other stories: another BPE of the same size
  PreparedData pa = open_prepared(a), pb = open_prepared(b);
  REQUIRE(pa.tokenizer.vocab_size() == pb.tokenizer.vocab_size());  // the vocabulary size alone cannot tell them apart

  SUBCASE("a shard written with tokenizer B in A's directory") {
    const std::string shard = a + "/train/shard_00000.bin";
    fs::copy_file(b + "/train/shard_00000.bin", shard, fs::copy_options::overwrite_existing);
    const std::string e = error_of([&] { open_prepared(a); });
    INFO(e);
    CHECK(contains(e, shard));
    CHECK(contains(e, "tokenizer"));
    CHECK(contains(e, data::hash_hex(pa.tokenizer.hash())));
    CHECK(contains(e, data::hash_hex(pb.tokenizer.hash())));
  }
  SUBCASE("tokenizer.bpe replaced by B's") {
    fs::copy_file(b + "/tokenizer.bpe", a + "/tokenizer.bpe", fs::copy_options::overwrite_existing);
    const std::string e = error_of([&] { open_prepared(a); });
    INFO(e);
    CHECK(contains(e, "tokenizer"));
    CHECK(contains(e, data::hash_hex(pb.tokenizer.hash())));
  }
}

TEST_CASE("prepared data integrity: a flipped byte in a shard is a checksum error at open, naming the shard") {
  TempDir tmp("prep_flip");
  const std::string a = tmp.file("a");
  prepare_data(options(a, 1));
  open_prepared(a);
  for (const std::string split : {"train", "val"}) {
    const std::string shard = a + "/" + split + "/shard_00000.bin";
    const std::string good = slurp(shard);
    std::string bad = good;
    bad[bad.size() - 7] ^= 0x04;  // in the zstd payload: the header still checks out
    spit(shard, bad);
    const std::string e = error_of([&] { open_prepared(a); });
    INFO(e);
    CHECK(contains(e, shard));
    CHECK(contains(e, "checksum mismatch"));
    spit(shard, good);
  }
  open_prepared(a);
  // A shard prepare did not write (an extra file) is named too.
  fs::copy_file(a + "/train/shard_00000.bin", a + "/train/shard_00009.bin");
  const std::string e = error_of([&] { open_prepared(a); });
  CHECK(contains(e, a + "/train/shard_00009.bin"));
}

TEST_CASE("shard header v2: the tokenizer hash round trips and is covered by the header checksum") {
  TempDir tmp("shard_v2");
  const std::string path = tmp.file("s.bin");
  data::write_shard(path, std::vector<int32_t>{1, 2, 3}, 10, 3, 0x0123456789abcdefULL);
  CHECK(data::read_shard_header(path).tokenizer_hash == 0x0123456789abcdefULL);
  CHECK(data::read_shard_header(path).version == 2);
  std::string b = slurp(path);
  b[60] ^= 1;  // inside the tokenizer hash
  spit(path, b);
  CHECK(contains(error_of([&] { data::read_shard(path); }), "header checksum mismatch"));
}

TEST_CASE("tokenizer hash: equal for the same merges and specials, different otherwise, stable across save/load") {
  TempDir tmp("tok_hash");
  data::Tokenizer t1 = data::Tokenizer::train("the cat sat on the mat, the cat ate the rat", 270);
  data::Tokenizer t2 = data::Tokenizer::train("a dog and a log and a frog on a bog", 270);
  t1.save(tmp.file("t1.bpe"));
  CHECK(data::Tokenizer::load(tmp.file("t1.bpe")).hash() == t1.hash());
  CHECK(t1.hash() != t2.hash());
  CHECK(data::Tokenizer().hash() != t1.hash());
}
