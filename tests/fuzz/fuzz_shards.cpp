// tests/fuzz/fuzz_shards.cpp — data/shards.h: read_shard_header(), read_shard() and a TokenLoader over
// arbitrary shard bytes (a path API: the bytes go to a scratch file), and read_text_file() (the zstd
// stream reader) over the same bytes.
//
// The first input byte is a mode, the rest the file. Random bytes almost never match an FNV-1a, so the
// mode can repair the checksums a mutation broke, letting it reach the checks behind them:
//   bit 1 (2): the token checksum (bytes 32..39) := FNV-1a of what the zstd payload decompresses to (when
//              it does, to at most 1 MiB): mutated payloads reach the token range checks and the loader;
//   bit 0 (1): compressed_size (bytes 40..47) := the payload's length, and the header checksum (bytes
//              48..55: FNV-1a of bytes 0..47, then 56..63 from version 2 on) := one that matches:
//              mutated header fields reach the range checks and the decompressor.
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <zstd.h>

#include "data/shards.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::vector<uint8_t> file(data + 1, data + size);
  if ((mode & 2) && file.size() > sg::data::kShardHeaderBytes) {
    const uint8_t* payload = file.data() + sg::data::kShardHeaderBytes;
    const size_t n = file.size() - sg::data::kShardHeaderBytes;
    const unsigned long long raw_size = ZSTD_getFrameContentSize(payload, n);
    if (raw_size <= (1u << 20)) {  // also excludes ZSTD_CONTENTSIZE_UNKNOWN / _ERROR
      std::vector<uint8_t> raw(raw_size);
      const size_t got = ZSTD_decompress(raw.data(), raw.size(), payload, n);
      if (!ZSTD_isError(got)) {
        const uint64_t checksum = sg::data::fnv1a64(raw.data(), got);
        std::memcpy(file.data() + 32, &checksum, 8);
      }
    }
  }
  if ((mode & 1) && file.size() >= sg::data::kShardHeaderBytes) {
    const uint64_t payload = file.size() - sg::data::kShardHeaderBytes;
    std::memcpy(file.data() + 40, &payload, 8);  // little-endian host (as the reader assumes)
    uint32_t version;
    std::memcpy(&version, file.data() + 8, 4);
    uint64_t h = sg::data::fnv1a64(file.data(), 48);  // version 1: bytes 0..47; from 2 on also 56..63
    if (version >= 2) h = sg::data::fnv1a64(file.data() + 56, 8, h);
    std::memcpy(file.data() + 48, &h, 8);
  }
  const std::string path = sg::fuzz::bytes_to_file("shard_00000.bin", file.data(), file.size());
  bool text_ok = false;  // a zstd text file decoded (a file without zstd's magic is returned as it is)
  try {
    (void)sg::data::read_text_file(path);
    static const uint8_t zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    text_ok = file.size() >= 4 && std::memcmp(file.data(), zstd_magic, 4) == 0;
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
  }
  try {
    (void)sg::data::read_shard_header(path);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    if (text_ok) sg::fuzz::note_accepted();  // a zstd text file, not a shard
    return 0;
  }
  std::vector<int32_t> tokens;
  sg::data::ShardHeader header;
  try {
    tokens = sg::data::read_shard(path, &header);
  } catch (const std::exception& e) {
    sg::fuzz::documented_error(e);
    if (text_ok) sg::fuzz::note_accepted();
    return 0;
  }
  sg::fuzz::note_accepted();
  for (int32_t t : tokens) sg::fuzz::fuzz_check(t >= 0 && (uint64_t)t < header.vocab_size, "token >= vocab_size");
  for (bool random_positions : {false, true}) {
    try {
      sg::data::LoaderConfig cfg;
      cfg.batch_size = 2;
      cfg.seq_len = 3;
      cfg.random_positions = random_positions;
      sg::data::TokenLoader loader({path}, cfg);
      for (int i = 0; i < 3; ++i) {
        const std::vector<int32_t> batch = loader.next_batch();
        sg::fuzz::fuzz_check(batch.size() == 2 * 4, "a batch of the wrong size");
        for (int32_t t : batch) sg::fuzz::fuzz_check(t >= 0 && (uint64_t)t < header.vocab_size, "batch token out of range");
      }
      const auto state = loader.state();
      sg::fuzz::fuzz_check(sg::data::TokenLoader::State::from_json(state.to_json()) == state,
                           "loader state does not read back");
    } catch (const std::exception& e) {  // e.g. fewer tokens than one row
      sg::fuzz::documented_error(e);
    }
  }
  return 0;
}
