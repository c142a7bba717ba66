// tests/fuzz/fuzz_shards.cpp — data/shards.h: read_shard_header(), read_shard() and a TokenLoader over
// arbitrary shard bytes (a path API: the bytes go to a scratch file), and read_text_file() (the zstd
// stream reader) over the same bytes.
//
// The first input byte is a mode, the rest the file. Mode bit 0 set: before writing the file, the
// target rewrites compressed_size (bytes 40..47) to the payload's length and the header checksum
// (bytes 48..55) to match, so mutations of the header fields and the zstd payload get past the header
// checksum and reach the range checks and the decompressor (random bytes almost never match an FNV-1a).
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "data/shards.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::vector<uint8_t> file(data + 1, data + size);
  if ((mode & 1) && file.size() >= sg::data::kShardHeaderBytes) {
    const uint64_t payload = file.size() - sg::data::kShardHeaderBytes;
    std::memcpy(file.data() + 40, &payload, 8);  // little-endian host (as the reader assumes)
    const uint64_t h = sg::data::fnv1a64(file.data(), 48);
    std::memcpy(file.data() + 48, &h, 8);
  }
  const std::string path = sg::fuzz::bytes_to_file("shard_00000.bin", file.data(), file.size());
  try {
    (void)sg::data::read_text_file(path);
  } catch (const std::exception&) {
  }
  try {
    (void)sg::data::read_shard_header(path);
  } catch (const std::exception&) {
    return 0;
  }
  std::vector<int32_t> tokens;
  sg::data::ShardHeader header;
  try {
    tokens = sg::data::read_shard(path, &header);
  } catch (const std::exception&) {
    return 0;
  }
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
    } catch (const std::exception&) {  // e.g. fewer tokens than one row
    }
  }
  return 0;
}
