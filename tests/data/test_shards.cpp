// tests/data/test_shards.cpp — shard round trips, every corruption named, atomic writes, the loader's
// determinism and bit-identical resume, zstd text files.
#include <doctest/doctest.h>
#include <zstd.h>

#include <cstring>
#include <set>

#include "autograd/rng.h"
#include "data/shards.h"
#include "tests/data/temp_dir.h"

using namespace sg::data;
using sg::data::testing::slurp;
using sg::data::testing::spit;
using sg::data::testing::TempDir;

namespace {

std::vector<int32_t> random_tokens(uint64_t seed, size_t n, int64_t vocab) {
  sg::Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = (int32_t)rng.randint((uint64_t)vocab);
  return t;
}

// The message of the std::runtime_error that f throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A shard built by hand from the layout in shards.h (independent of write_shard).
std::string handmade_shard(const std::vector<uint16_t>& tokens, uint64_t vocab) {
  std::string raw(tokens.size() * 2, '\0');
  for (size_t i = 0; i < tokens.size(); ++i) {
    raw[2 * i] = (char)(tokens[i] & 0xff);
    raw[2 * i + 1] = (char)(tokens[i] >> 8);
  }
  std::string comp(ZSTD_compressBound(raw.size()), '\0');
  comp.resize(ZSTD_compress(comp.data(), comp.size(), raw.data(), raw.size(), 1));
  unsigned char h[64] = {};
  auto put = [&](int off, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) h[off + i] = (unsigned char)(v >> (8 * i));
  };
  std::memcpy(h, "SGTOKSH1", 8);
  put(8, 1, 4);
  put(12, 2, 4);
  put(16, vocab, 8);
  put(24, tokens.size(), 8);
  put(32, fnv1a64(raw.data(), raw.size()), 8);
  put(40, comp.size(), 8);
  put(48, fnv1a64(h, 48), 8);
  return std::string((const char*)h, 64) + comp;
}

}  // namespace

TEST_CASE("fnv1a64 known values") {
  CHECK(fnv1a64("", 0) == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
  CHECK(fnv1a64("bar", 3, fnv1a64("foo", 3)) == fnv1a64("foobar", 6));
}

TEST_CASE("shards: round trip with uint16 and uint32 tokens, no .tmp left") {
  TempDir dir("shard_roundtrip");
  for (int64_t vocab : {256, 4096, 65536, 65537, 100000}) {
    const auto tokens = random_tokens((uint64_t)vocab, 10007, vocab);
    const std::string path = dir.file("s_" + std::to_string(vocab) + ".bin");
    write_shard(path, tokens, vocab);
    CHECK(!std::filesystem::exists(path + ".tmp"));
    ShardHeader h;
    CHECK(read_shard(path, &h) == tokens);
    CHECK(h.elem_bytes == (vocab <= 65536 ? 2u : 4u));
    CHECK(h.vocab_size == (uint64_t)vocab);
    CHECK(h.n_tokens == tokens.size());
    CHECK(read_shard_header(path).checksum == h.checksum);
  }
  const std::string empty = dir.file("empty.bin");
  write_shard(empty, std::vector<int32_t>{}, 10);
  CHECK(read_shard(empty).empty());
  CHECK_THROWS_AS(write_shard(dir.file("bad.bin"), std::vector<int32_t>{1, 10}, 10), std::invalid_argument);
  CHECK_THROWS_AS(write_shard(dir.file("bad.bin"), std::vector<int32_t>{-1}, 10), std::invalid_argument);
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) CHECK(e.path().extension() != ".tmp");
  // The hand-made file (built from the documented layout) reads back too.
  spit(dir.file("hand.bin"), handmade_shard({1, 2, 3, 500}, 501));
  CHECK(read_shard(dir.file("hand.bin")) == std::vector<int32_t>{1, 2, 3, 500});
}

TEST_CASE("shards: each kind of damage is detected and named") {
  TempDir dir("shard_damage");
  const auto tokens = random_tokens(1, 5000, 4096);
  const std::string good = dir.file("good.bin");
  write_shard(good, tokens, 4096);
  const std::string bytes = slurp(good);
  const std::string path = dir.file("bad.bin");
  auto damaged = [&](const std::string& b) {
    spit(path, b);
    const std::string e = error_of([&] { read_shard(path); });
    CHECK(contains(e, path));
    return e;
  };

  SUBCASE("flipped payload byte -> checksum or zstd error") {
    for (size_t off : {(size_t)64 + 5, bytes.size() / 2, bytes.size() - 3}) {
      std::string b = bytes;
      b[off] ^= 0x10;
      const std::string e = damaged(b);
      INFO("offset " << off << ": " << e);
      CHECK((contains(e, "checksum mismatch") || contains(e, "zstd")));
    }
  }
  SUBCASE("truncated header and payload, with expected vs actual bytes") {
    CHECK(contains(damaged(bytes.substr(0, 30)), "truncated header: expected 64 bytes, file has 30"));
    const size_t payload = bytes.size() - 64;
    CHECK(contains(damaged(bytes.substr(0, bytes.size() - 10)),
                   "truncated payload: header says " + std::to_string(payload) + " compressed bytes, file has " +
                       std::to_string(payload - 10)));
    CHECK(contains(damaged(bytes + "xx"), "2 unexpected bytes"));
    CHECK(contains(damaged(""), "truncated header"));
  }
  SUBCASE("wrong magic, unsupported version, damaged header") {
    std::string b = bytes;
    b[0] = 'X';
    CHECK(contains(damaged(b), "bad magic"));
    b = bytes;
    b[8] = 3;
    CHECK(contains(damaged(b), "unsupported version 3"));
    b = bytes;
    b[20] ^= 1;  // inside vocab_size
    CHECK(contains(damaged(b), "header checksum mismatch"));
  }
  SUBCASE("token id >= vocab_size") {
    spit(path, handmade_shard({1, 2, 7, 3}, 5));
    CHECK(contains(error_of([&] { read_shard(path); }), "token id 7 at index 2 is >= vocab_size 5"));
  }
  SUBCASE("header-only read reports the same header damage") {
    spit(path, bytes.substr(0, 40));
    CHECK(contains(error_of([&] { read_shard_header(path); }), "truncated header"));
    CHECK(contains(error_of([&] { read_shard_header(dir.file("missing.bin")); }), "missing.bin"));
  }
}

TEST_CASE("shards: write_shards splits a corpus into numbered files") {
  TempDir dir("shard_split");
  const auto tokens = random_tokens(2, 2500, 300);
  const auto paths = write_shards(dir.file("shards"), tokens, 300, 1000);
  REQUIRE(paths.size() == 3);
  CHECK(paths[0].ends_with("shard_00000.bin"));
  CHECK(paths[2].ends_with("shard_00002.bin"));
  CHECK(list_shards(dir.file("shards")) == paths);
  std::vector<int32_t> back;
  for (const auto& p : paths) {
    auto t = read_shard(p);
    back.insert(back.end(), t.begin(), t.end());
  }
  CHECK(back == tokens);
  CHECK(read_shard(paths[2]).size() == 500);
}

namespace {

// A corpus where token i == i (mod vocab), so a row shows where it came from.
std::vector<std::string> counting_shards(const TempDir& dir, std::vector<int64_t> sizes) {
  std::vector<std::string> paths;
  int32_t next = 0;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<int32_t> t((size_t)sizes[s]);
    for (auto& x : t) x = next++;
    paths.push_back(dir.file("shard_" + std::to_string(s) + ".bin"));
    write_shard(paths.back(), t, 100000);
  }
  return paths;
}

std::vector<std::vector<int32_t>> take(TokenLoader& L, int n) {
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) out.push_back(L.next_batch());
  return out;
}

}  // namespace

TEST_CASE("loader: batches are windows of the corpus, deterministic by seed") {
  TempDir dir("loader_det");
  const auto paths = counting_shards(dir, {1000, 257, 40, 600});
  for (bool random_positions : {false, true}) {
    LoaderConfig cfg{.batch_size = 4, .seq_len = 16, .seed = 7, .random_positions = random_positions};
    TokenLoader a(paths, cfg), b(paths, cfg);
    cfg.seed = 8;
    TokenLoader c(paths, cfg);
    const auto ba = take(a, 30), bb = take(b, 30), bc = take(c, 30);
    CHECK(ba == bb);
    CHECK(ba != bc);
    for (const auto& batch : ba) {
      REQUIRE(batch.size() == 4 * 17);
      for (int r = 0; r < 4; ++r)
        for (int t = 1; t < 17; ++t) CHECK(batch[r * 17 + t] == batch[r * 17] + t);  // contiguous, one shard
    }
  }
}

TEST_CASE("loader: an epoch visits every window exactly once") {
  TempDir dir("loader_epoch");
  const auto paths = counting_shards(dir, {1000, 257, 10, 600});  // 10 tokens: too short for a window
  LoaderConfig cfg{.batch_size = 1, .seq_len = 16, .seed = 1};
  TokenLoader L(paths, cfg);
  const int64_t W = L.windows_per_epoch();
  CHECK(W == (999 / 16) + (256 / 16) + 0 + (599 / 16));
  std::multiset<int32_t> starts;
  for (int64_t i = 0; i < W; ++i) starts.insert(L.next_batch()[0]);
  CHECK((int64_t)starts.size() == W);
  CHECK(std::set<int32_t>(starts.begin(), starts.end()).size() == starts.size());
  // Each start is k*T into its shard (shard offsets 0, 1000, 1257, 1267).
  for (int32_t s : starts) {
    const int32_t base = s >= 1267 ? 1267 : s >= 1000 ? 1000 : 0;
    CHECK((s - base) % 16 == 0);
  }
  CHECK(L.state().epoch == 0);
  for (int i = 0; i < 200; ++i) L.next_batch();
  CHECK(L.state().epoch >= 1);
}

TEST_CASE("loader: resume from a saved state continues bit-identically") {
  TempDir dir("loader_resume");
  const auto paths = counting_shards(dir, {700, 300, 450});
  for (bool random_positions : {false, true}) {
    INFO("random_positions " << random_positions);
    LoaderConfig cfg{.batch_size = 5, .seq_len = 12, .seed = 42, .random_positions = random_positions};
    TokenLoader uninterrupted(paths, cfg);
    const auto want = take(uninterrupted, 60);  // > 1 epoch in epoch mode (~119 windows / 5 per batch)

    for (int stop : {0, 1, 7, 23, 24, 41}) {
      TokenLoader first(paths, cfg);
      take(first, stop);
      const std::string json = first.state().to_json();
      TokenLoader::State st = TokenLoader::State::from_json(json);
      CHECK(st == first.state());
      CHECK(st.batches == (uint64_t)stop);

      TokenLoader resumed(paths, cfg);
      resumed.next_batch();  // wherever it was, restore() puts it back
      resumed.restore(st);
      const auto got = take(resumed, 60 - stop);
      for (int i = stop; i < 60; ++i) CHECK(got[i - stop] == want[i]);
    }
  }
  LoaderConfig cfg{.batch_size = 5, .seq_len = 12, .seed = 42};
  TokenLoader L(paths, cfg);
  auto st = L.state();
  st.seq_len = 13;
  CHECK_THROWS_AS(L.restore(st), std::invalid_argument);
  // the same config over different data is refused too
  TokenLoader other({paths[0], paths[1]}, cfg);
  CHECK_THROWS_WITH_AS(other.restore(L.state()), doctest::Contains("data_fingerprint"), std::invalid_argument);
  CHECK_THROWS_AS(TokenLoader::State::from_json("{\"seed\": 1}"), std::invalid_argument);
}

TEST_CASE("loader: a damaged shard is reported by name") {
  TempDir dir("loader_damage");
  const auto paths = counting_shards(dir, {500, 500});
  LoaderConfig cfg{.batch_size = 2, .seq_len = 8, .seed = 3};
  std::string b = slurp(paths[1]);
  SUBCASE("header: when the loader opens") {
    b[3] = '?';
    spit(paths[1], b);
    const std::string e = error_of([&] { TokenLoader L(paths, cfg); });
    CHECK(contains(e, paths[1]));
    CHECK(contains(e, "bad magic"));
  }
  SUBCASE("payload: when the shard is first read") {
    b[b.size() / 2] ^= 0x40;
    spit(paths[1], b);
    const std::string e = error_of([&] {
      TokenLoader L(paths, cfg);
      for (int i = 0; i < 200; ++i) L.next_batch();
    });
    CHECK(contains(e, paths[1]));
  }
  SUBCASE("mismatched vocab") {
    write_shard(paths[1], std::vector<int32_t>(100, 1), 50);
    CHECK(contains(error_of([&] { TokenLoader L(paths, cfg); }), "vocab_size"));
  }
  CHECK_THROWS_AS(TokenLoader({}, cfg), std::invalid_argument);
}

TEST_CASE("read_text_file: plain and zstd files (one frame, streamed without size, several frames)") {
  TempDir dir("text_zstd");
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "line " + std::to_string(i) + ": the quick brown fox\n";
  text += std::string("\0\xff tail", 7);

  spit(dir.file("plain.txt"), text);
  CHECK(read_text_file(dir.file("plain.txt")) == text);

  std::string one(ZSTD_compressBound(text.size()), '\0');
  one.resize(ZSTD_compress(one.data(), one.size(), text.data(), text.size(), 3));
  spit(dir.file("one.zst"), one);
  CHECK(read_text_file(dir.file("one.zst")) == text);

  // Streamed: the frame header has no content size, as with `cat file | zstd`.
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string streamed(ZSTD_compressBound(text.size()) + 64, '\0');
  ZSTD_outBuffer out{streamed.data(), streamed.size(), 0};
  const size_t half = text.size() / 2;
  ZSTD_inBuffer in1{text.data(), half, 0};
  while (in1.pos < in1.size) REQUIRE(!ZSTD_isError(ZSTD_compressStream2(cctx, &out, &in1, ZSTD_e_continue)));
  ZSTD_inBuffer in2{text.data() + half, text.size() - half, 0};
  size_t left;
  do left = ZSTD_compressStream2(cctx, &out, &in2, ZSTD_e_end);
  while (left != 0 && !ZSTD_isError(left));
  ZSTD_freeCCtx(cctx);
  REQUIRE(!ZSTD_isError(left));
  streamed.resize(out.pos);
  CHECK(ZSTD_getFrameContentSize(streamed.data(), streamed.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
  spit(dir.file("streamed.zst"), streamed);
  CHECK(read_text_file(dir.file("streamed.zst")) == text);

  spit(dir.file("two.zst"), one + streamed);
  CHECK(read_text_file(dir.file("two.zst")) == text + text);

  write_zstd_file(dir.file("mine.zst"), text);
  CHECK(read_text_file(dir.file("mine.zst")) == text);
  CHECK(!std::filesystem::exists(dir.file("mine.zst.tmp")));

  spit(dir.file("cut.zst"), one.substr(0, one.size() - 20));
  const std::string e = error_of([&] { read_text_file(dir.file("cut.zst")); });
  CHECK(contains(e, dir.file("cut.zst")));
  CHECK((contains(e, "truncated") || contains(e, "zstd error")));
  CHECK(contains(error_of([&] { read_text_file(dir.file("nope.txt")); }), "nope.txt"));
}
