// tests/fuzz/test_fuzz_regressions.cpp — the fuzzers' findings (tests/fixtures/fuzz_regressions/<target>/)
// as plain tests: each input now gets a clear error naming the file and what is wrong, not a crash or a
// gigabyte allocation. (CTest also runs every regression input through its fuzz_<target> driver.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/shards.h"
#include "train/config_yaml.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/test_util.h"

namespace {

const std::string kRegressions = std::string(SEEKGRAD_SOURCE_DIR) + "/tests/fixtures/fuzz_regressions/";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A shards regression input is the fuzz target's mode byte + the file: write the file, read it.
std::string shard_error_of(const std::string& name) {
  const std::string bytes = slurp(kRegressions + "shards/" + name);
  const std::string path =
      sg::fuzz::bytes_to_file("shard_00000.bin", reinterpret_cast<const uint8_t*>(bytes.data()) + 1, bytes.size() - 1);
  return sg::test::error_of([&] { (void)sg::data::read_shard(path); });
}

}  // namespace

TEST_CASE("fuzz regression shards: n_tokens beyond what a content-size-free zstd frame holds is an error, not an allocation") {
  // A 74-byte shard: header n_tokens = 2^41 (4 TiB of tokens), a valid empty zstd frame with no content size.
  const std::string e = shard_error_of("huge_n_tokens_no_content_size.bin");
  CHECK(e.find("[shard] ") == 0);
  // (The bound is zstd's: one block of at most the frame's window, 1 KiB here, with libzstd 1.5.)
  CHECK(e.find("shard_00000.bin: header says 2199023255552 tokens x 2 bytes = 4398046511104 but the 9-byte zstd "
               "payload decompresses to at most ") != std::string::npos);
  // 3 Gi tokens: before the fix, 26 s allocating and zeroing 6 GB, then a size error.
  CHECK(shard_error_of("n_tokens_3g_no_content_size.bin").find("header says 3221225472 tokens") != std::string::npos);
}

TEST_CASE("fuzz regression shards: an n_tokens whose byte count overflows 64 bits is a header error") {
  const std::string e = shard_error_of("n_tokens_wraps.bin");
  CHECK(e.find("shard_00000.bin: n_tokens 9223372036854775808 x 2 bytes overflows a 64-bit byte count") !=
        std::string::npos);
  CHECK(sg::test::error_of([&] {
          (void)sg::data::read_shard_header((sg::fuzz::scratch_dir() / "shard_00000.bin").string());
        }).find("overflows") != std::string::npos);
}

// yaml_config: a YAML map or list used as a key ("? a: 1\n: 2") made yaml-cpp's as<std::string>() throw a bare
// "yaml-cpp: error at line 3, column 5: bad conversion" (no file, no key). Now the config loader names both.
TEST_CASE("fuzz regression yaml_config: a map or a list used as a key is an error naming the file and the line") {
  const std::string top = kRegressions + "yaml_config/map_as_key.yaml";
  const std::string e1 = sg::test::error_of([&] { (void)sg::load_pretrain_config(top); });
  CHECK(e1 == "[config] " + top + ": line 3, column 3: a map used as a key (keys are plain names, as in 'dim: 64')");
  const std::string in_section = kRegressions + "yaml_config/list_as_key_in_section.yaml";
  const std::string e2 = sg::test::error_of([&] { (void)sg::load_pretrain_config(in_section); });
  CHECK(e2 == "[config] " + in_section +
                  ": line 3, column 5: a list used as a key in 'model' (keys are plain names, as in 'dim: 64')");
}
