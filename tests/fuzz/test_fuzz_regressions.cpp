// tests/fuzz/test_fuzz_regressions.cpp — the fuzzers' findings (tests/fixtures/fuzz_regressions/<target>/)
// as plain tests: each input now gets a clear error naming the file and what is wrong, not a crash or a
// gigabyte allocation. (CTest also runs every regression input through its fuzz_<target> driver.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/shards.h"
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
