// data/shards.cpp — shard files (header + zstd payload), the TokenLoader, zstd text files. See shards.h.
#include "data/shards.h"

// ZSTD_decompressBound (zstd >= 1.4, exported by the shared library, declared only in the "static" section).
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "autograd/rng.h"

namespace sg::data {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void shard_error(const std::string& path, const std::string& what) {
  throw std::runtime_error("[shard] " + path + ": " + what);
}

std::string hex64(uint64_t v) { return hash_hex(v); }

// The header checksum: bytes 0..47, and from version 2 on also 56..63 (the tokenizer hash).
uint64_t header_checksum(const unsigned char* p, uint32_t version) {
  const uint64_t h = fnv1a64(p, 48);
  return version >= 2 ? fnv1a64(p + 56, 8, h) : h;
}

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= (uint32_t)p[i] << (8 * i);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

std::string read_file_bytes(const std::string& path, const char* who) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("[") + who + "] " + path + ": cannot open for reading");
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error(std::string("[") + who + "] " + path + ": read error");
  return data;
}

// Writes bytes to path + ".tmp" and renames it to path.
void write_file_atomic(const std::string& path, const void* a, size_t na, const void* b, size_t nb, const char* who) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error(std::string("[") + who + "] " + tmp + ": cannot open for writing");
    f.write((const char*)a, (std::streamsize)na);
    if (nb) f.write((const char*)b, (std::streamsize)nb);
    f.flush();
    if (!f) {
      f.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      throw std::runtime_error(std::string("[") + who + "] " + tmp + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw std::runtime_error(std::string("[") + who + "] cannot rename " + tmp + " to " + path + ": " + ec.message());
}

// Checks the header bytes (at least kShardHeaderBytes of them) against a file of file_size bytes.
ShardHeader parse_header(const std::string& path, const unsigned char* p, size_t have, uint64_t file_size) {
  if (have < kShardHeaderBytes)
    shard_error(path, "truncated header: expected " + std::to_string(kShardHeaderBytes) + " bytes, file has " +
                          std::to_string(have));
  if (std::memcmp(p, kShardMagic, 8) != 0) {
    std::string found;  // printable bytes as is, others as \xNN
    for (int i = 0; i < 8; ++i) {
      char buf[8];
      if (p[i] >= 0x20 && p[i] < 0x7f)
        std::snprintf(buf, sizeof buf, "%c", p[i]);
      else
        std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
      found += buf;
    }
    shard_error(path, "bad magic: not a seekgrad token shard (expected \"SGTOKSH1\", found \"" + found + "\")");
  }
  ShardHeader h;
  h.version = get_u32(p + 8);
  if (h.version != 1 && h.version != kShardVersion)
    shard_error(path, "unsupported version " + std::to_string(h.version) + " (this build reads versions 1 to " +
                          std::to_string(kShardVersion) + ")");
  const uint64_t want_hc = header_checksum(p, h.version), got_hc = get_u64(p + 48);
  if (want_hc != got_hc)
    shard_error(path, "header checksum mismatch: stored " + hex64(got_hc) + ", computed " + hex64(want_hc) +
                          " (header damaged)");
  h.elem_bytes = get_u32(p + 12);
  h.vocab_size = get_u64(p + 16);
  h.n_tokens = get_u64(p + 24);
  h.checksum = get_u64(p + 32);
  h.compressed_size = get_u64(p + 40);
  h.tokenizer_hash = h.version >= 2 ? get_u64(p + 56) : 0;
  if (h.elem_bytes != 2 && h.elem_bytes != 4)
    shard_error(path, "element width " + std::to_string(h.elem_bytes) + " bytes, expected 2 or 4");
  if (h.vocab_size == 0 || h.vocab_size > (uint64_t)INT32_MAX + 1 || (h.elem_bytes == 2 && h.vocab_size > 65536))
    shard_error(path, "vocab_size " + std::to_string(h.vocab_size) + " does not fit " + std::to_string(h.elem_bytes) +
                          "-byte tokens");
  if (h.n_tokens > (uint64_t)INT64_MAX / h.elem_bytes)
    shard_error(path, "n_tokens " + std::to_string(h.n_tokens) + " x " + std::to_string(h.elem_bytes) +
                          " bytes overflows a 64-bit byte count");
  const uint64_t payload = file_size - kShardHeaderBytes;
  if (payload < h.compressed_size)
    shard_error(path, "truncated payload: header says " + std::to_string(h.compressed_size) +
                          " compressed bytes, file has " + std::to_string(payload) + " after the header");
  if (payload > h.compressed_size)
    shard_error(path, std::to_string(payload - h.compressed_size) + " unexpected bytes after the " +
                          std::to_string(h.compressed_size) + "-byte payload");
  return h;
}

}  // namespace

void write_shard(const std::string& path, std::span<const int32_t> tokens, int64_t vocab_size, int zstd_level,
                 uint64_t tokenizer_hash) {
  if (vocab_size <= 0 || vocab_size > (int64_t)INT32_MAX + 1)
    throw std::invalid_argument("[shard] " + path + ": vocab_size " + std::to_string(vocab_size) + " out of range");
  const uint32_t elem = vocab_size <= 65536 ? 2 : 4;
  // tokens -> little-endian uint16/uint32 bytes
  std::vector<unsigned char> raw(tokens.size() * elem);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= vocab_size)
      throw std::invalid_argument("[shard] " + path + ": token " + std::to_string(t) + " at index " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(vocab_size) + ")");
    for (uint32_t b = 0; b < elem; ++b) raw[i * elem + b] = (unsigned char)((uint32_t)t >> (8 * b));
  }
  std::vector<unsigned char> comp(ZSTD_compressBound(raw.size()));
  const size_t csize = ZSTD_compress(comp.data(), comp.size(), raw.data(), raw.size(), zstd_level);
  if (ZSTD_isError(csize)) shard_error(path, std::string("zstd compression failed: ") + ZSTD_getErrorName(csize));

  unsigned char h[kShardHeaderBytes] = {};
  std::memcpy(h, kShardMagic, 8);
  put_u32(h + 8, kShardVersion);
  put_u32(h + 12, elem);
  put_u64(h + 16, (uint64_t)vocab_size);
  put_u64(h + 24, tokens.size());
  put_u64(h + 32, fnv1a64(raw.data(), raw.size()));
  put_u64(h + 40, csize);
  put_u64(h + 56, tokenizer_hash);
  put_u64(h + 48, header_checksum(h, kShardVersion));
  write_file_atomic(path, h, sizeof h, comp.data(), csize, "shard");
}

ShardHeader read_shard_header(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) shard_error(path, "cannot open: " + ec.message());
  std::ifstream f(path, std::ios::binary);
  if (!f) shard_error(path, "cannot open for reading");
  unsigned char h[kShardHeaderBytes];
  f.read((char*)h, sizeof h);
  return parse_header(path, h, (size_t)f.gcount(), size);
}

std::vector<int32_t> read_shard(const std::string& path, ShardHeader* header) {
  const std::string data = read_file_bytes(path, "shard");
  const unsigned char* p = (const unsigned char*)data.data();
  const ShardHeader h = parse_header(path, p, data.size(), data.size());
  const unsigned char* payload = p + kShardHeaderBytes;

  const uint64_t raw_size = h.n_tokens * h.elem_bytes;
  const unsigned long long frame_size = ZSTD_getFrameContentSize(payload, h.compressed_size);
  if (frame_size == ZSTD_CONTENTSIZE_ERROR) shard_error(path, "zstd error: payload is not a zstd frame");
  if (frame_size != ZSTD_CONTENTSIZE_UNKNOWN && frame_size != raw_size)
    shard_error(path, "zstd frame holds " + std::to_string(frame_size) + " bytes but the header says " +
                          std::to_string(h.n_tokens) + " tokens x " + std::to_string(h.elem_bytes) +
                          " bytes = " + std::to_string(raw_size));
  // A frame without a content size (or several frames) can decompress to at most this many bytes: checked
  // before allocating, so a damaged n_tokens cannot make a small file allocate (and zero) gigabytes.
  const unsigned long long bound = ZSTD_decompressBound(payload, h.compressed_size);
  if (bound == ZSTD_CONTENTSIZE_ERROR) shard_error(path, "zstd error: payload is not a sequence of zstd frames");
  if (raw_size > bound)
    shard_error(path, "header says " + std::to_string(h.n_tokens) + " tokens x " + std::to_string(h.elem_bytes) +
                          " bytes = " + std::to_string(raw_size) + " but the " + std::to_string(h.compressed_size) +
                          "-byte zstd payload decompresses to at most " + std::to_string(bound) + " bytes");
  std::vector<unsigned char> raw(raw_size);
  const size_t got = ZSTD_decompress(raw.data(), raw.size(), payload, h.compressed_size);
  if (ZSTD_isError(got)) shard_error(path, std::string("zstd error: ") + ZSTD_getErrorName(got));
  if (got != raw_size)
    shard_error(path,
                "payload decompressed to " + std::to_string(got) + " bytes, expected " + std::to_string(raw_size));
  const uint64_t sum = fnv1a64(raw.data(), raw.size());
  if (sum != h.checksum) shard_error(path, "checksum mismatch: header " + hex64(h.checksum) + ", tokens " + hex64(sum));

  std::vector<int32_t> tokens(h.n_tokens);
  for (uint64_t i = 0; i < h.n_tokens; ++i) {
    const unsigned char* e = raw.data() + i * h.elem_bytes;
    const uint32_t t = h.elem_bytes == 2 ? (uint32_t)(e[0] | (e[1] << 8)) : get_u32(e);
    if (t >= h.vocab_size)
      shard_error(path, "token id " + std::to_string(t) + " at index " + std::to_string(i) + " is >= vocab_size " +
                            std::to_string(h.vocab_size));
    tokens[i] = (int32_t)t;
  }
  if (header) *header = h;
  return tokens;
}

std::vector<std::string> write_shards(const std::string& dir, std::span<const int32_t> tokens, int64_t vocab_size,
                                      int64_t tokens_per_shard, int zstd_level, uint64_t tokenizer_hash) {
  if (tokens_per_shard <= 0)
    throw std::invalid_argument("[shard] write_shards: tokens_per_shard must be > 0, got " +
                                std::to_string(tokens_per_shard));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("[shard] cannot create directory " + dir + ": " + ec.message());
  std::vector<std::string> paths;
  for (size_t start = 0, k = 0; start < tokens.size() || k == 0; start += (size_t)tokens_per_shard, ++k) {
    char name[32];
    std::snprintf(name, sizeof name, "shard_%05zu.bin", k);
    const size_t n = std::min(tokens.size() - start, (size_t)tokens_per_shard);
    paths.push_back((fs::path(dir) / name).string());
    write_shard(paths.back(), tokens.subspan(start, n), vocab_size, zstd_level, tokenizer_hash);
    if (tokens.empty()) break;
  }
  return paths;
}

std::vector<std::string> list_shards(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.rfind("shard_", 0) == 0 && name.size() > 4 && name.ends_with(".bin"))
      paths.push_back(e.path().string());
  }
  if (ec) throw std::runtime_error("[shard] cannot list directory " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  return paths;
}

// ---- TokenLoader ---------------------------------------------------------------------------------

namespace {

// A seed for (loader seed, a, b): one splitmix64-seeded draw, so nearby inputs give unrelated streams.
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
  Rng r(seed ^ (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL));
  return r.next_u64();
}

// Fisher–Yates: a uniformly random permutation of 0..n-1.
std::vector<uint32_t> permutation(uint64_t n, uint64_t seed) {
  std::vector<uint32_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = (uint32_t)i;
  Rng r(seed);
  for (uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[r.randint(i)]);
  return p;
}

}  // namespace

TokenLoader::TokenLoader(std::vector<std::string> shard_paths, const LoaderConfig& cfg)
    : paths_(std::move(shard_paths)), cfg_(cfg) {
  if (paths_.empty()) throw std::invalid_argument("[loader] no shards given");
  if (cfg_.batch_size <= 0 || cfg_.seq_len <= 0)
    throw std::invalid_argument("[loader] batch_size and seq_len must be > 0, got B=" +
                                std::to_string(cfg_.batch_size) + " T=" + std::to_string(cfg_.seq_len));
  if (paths_.size() >= UINT32_MAX) throw std::invalid_argument("[loader] too many shards");
  std::vector<unsigned char> fingerprint_bytes;  // (n_tokens, checksum) of each shard, little-endian
  for (size_t s = 0; s < paths_.size(); ++s) {
    const ShardHeader h = read_shard_header(paths_[s]);
    unsigned char b[16];
    put_u64(b, h.n_tokens);
    put_u64(b + 8, h.checksum);
    fingerprint_bytes.insert(fingerprint_bytes.end(), b, b + 16);
    if (s == 0)
      vocab_size_ = (int64_t)h.vocab_size;
    else if ((int64_t)h.vocab_size != vocab_size_)
      throw std::runtime_error("[loader] " + paths_[s] + " has vocab_size " + std::to_string(h.vocab_size) + " but " +
                               paths_[0] + " has " + std::to_string(vocab_size_));
    shard_n_tokens_.push_back(h.n_tokens);
    n_tokens_total_ += (int64_t)h.n_tokens;
    n_windows_total_ += windows_in(s);
    if ((uint64_t)windows_in(s) >= UINT32_MAX) throw std::invalid_argument("[loader] " + paths_[s] + " is too large");
  }
  data_fingerprint_ = fnv1a64(fingerprint_bytes.data(), fingerprint_bytes.size());
  if (n_windows_total_ == 0)
    throw std::invalid_argument("[loader] no shard holds T+1 = " + std::to_string(cfg_.seq_len + 1) + " tokens");
  uint64_t acc = 0;
  for (size_t s = 0; s < paths_.size(); ++s) {
    start_prefix_.push_back(acc);
    acc += shard_n_tokens_[s] > (uint64_t)cfg_.seq_len ? shard_n_tokens_[s] - (uint64_t)cfg_.seq_len : 0;
  }
  start_prefix_.push_back(acc);
  all_.resize(paths_.size());
  State start;  // epoch 0, cursor 0, rng seeded from cfg.seed
  start.seed = cfg_.seed;
  start.batch_size = cfg_.batch_size;
  start.seq_len = cfg_.seq_len;
  start.random_positions = cfg_.random_positions ? 1 : 0;
  start.data_fingerprint = data_fingerprint_;
  if (cfg_.random_positions) start.rng = Rng(cfg_.seed).state();
  restore(start);
}

int64_t TokenLoader::windows_in(size_t shard) const {
  const uint64_t n = shard_n_tokens_[shard], T = (uint64_t)cfg_.seq_len;
  return n >= T + 1 ? (int64_t)((n - 1) / T) : 0;
}

const std::vector<int32_t>& TokenLoader::shard_tokens(size_t shard) {
  if (all_[shard].empty()) all_[shard] = read_shard(paths_[shard]);
  return all_[shard];
}

void TokenLoader::start_shard() {
  const uint32_t idx = order_[shard_cursor_];
  window_order_ = permutation((uint64_t)windows_in(idx), derive_seed(cfg_.seed, epoch_ + 1, idx + 1));
  if (window_order_.empty()) return;  // too short for one window: never decompressed
  if (loaded_ != (int64_t)idx) {
    current_ = read_shard(paths_[idx]);
    if (current_.size() != shard_n_tokens_[idx])
      throw std::runtime_error("[loader] " + paths_[idx] + " changed since the loader opened it");
    loaded_ = idx;
  }
}

std::vector<int32_t> TokenLoader::next_batch() {
  const int64_t B = cfg_.batch_size, T = cfg_.seq_len, row = T + 1;
  std::vector<int32_t> out((size_t)(B * row));
  for (int64_t b = 0; b < B; ++b) {
    int32_t* dst = out.data() + b * row;
    if (cfg_.random_positions) {
      // a start position uniform over all valid starts of all shards
      Rng rng(0);
      rng.set_state(rng_state_);
      const uint64_t r = rng.randint(start_prefix_.back());
      rng_state_ = rng.state();
      const size_t s =
          (size_t)(std::upper_bound(start_prefix_.begin(), start_prefix_.end(), r) - start_prefix_.begin()) - 1;
      const std::vector<int32_t>& tok = shard_tokens(s);
      std::copy_n(tok.begin() + (int64_t)(r - start_prefix_[s]), row, dst);
      continue;
    }
    while (window_cursor_ >= window_order_.size()) {  // this shard is done: next shard, maybe next epoch
      window_cursor_ = 0;
      if (++shard_cursor_ == paths_.size()) {
        shard_cursor_ = 0;
        ++epoch_;
        order_ = permutation(paths_.size(), derive_seed(cfg_.seed, epoch_ + 1, 0));
      }
      start_shard();
    }
    const int64_t k = window_order_[window_cursor_++];
    std::copy_n(current_.begin() + k * T, row, dst);
  }
  ++batches_;
  return out;
}

TokenLoader::State TokenLoader::state() const {
  State s;
  s.seed = cfg_.seed;
  s.batch_size = cfg_.batch_size;
  s.seq_len = cfg_.seq_len;
  s.random_positions = cfg_.random_positions ? 1 : 0;
  s.data_fingerprint = data_fingerprint_;
  s.epoch = epoch_;
  s.shard_cursor = shard_cursor_;
  s.window_cursor = window_cursor_;
  s.rng = rng_state_;
  s.batches = batches_;
  return s;
}

void TokenLoader::restore(const State& s) {
  auto mismatch = [&](const char* key, int64_t saved, int64_t here) {
    throw std::invalid_argument("[loader] state was saved with " + std::string(key) + " " + std::to_string(saved) +
                                " but this loader has " + std::to_string(here));
  };
  if (s.seed != cfg_.seed) mismatch("seed", (int64_t)s.seed, (int64_t)cfg_.seed);
  if (s.batch_size != cfg_.batch_size) mismatch("batch_size", s.batch_size, cfg_.batch_size);
  if (s.seq_len != cfg_.seq_len) mismatch("seq_len", s.seq_len, cfg_.seq_len);
  if (s.random_positions != (cfg_.random_positions ? 1 : 0))
    mismatch("random_positions", s.random_positions, cfg_.random_positions ? 1 : 0);
  if (s.data_fingerprint != data_fingerprint_)
    throw std::invalid_argument("[loader] state was saved for other shards (data_fingerprint " +
                                std::to_string(s.data_fingerprint) + ", these shards give " +
                                std::to_string(data_fingerprint_) + ")");
  if (s.shard_cursor >= paths_.size())
    throw std::invalid_argument("[loader] state has shard_cursor " + std::to_string(s.shard_cursor) +
                                " but there are " + std::to_string(paths_.size()) + " shards");
  batches_ = s.batches;
  if (cfg_.random_positions) {
    rng_state_ = s.rng;
    return;
  }
  epoch_ = s.epoch;
  shard_cursor_ = s.shard_cursor;
  order_ = permutation(paths_.size(), derive_seed(cfg_.seed, epoch_ + 1, 0));
  start_shard();
  if (s.window_cursor > window_order_.size())
    throw std::invalid_argument("[loader] state has window_cursor " + std::to_string(s.window_cursor) + " but shard " +
                                paths_[order_[shard_cursor_]] + " has " + std::to_string(window_order_.size()) +
                                " windows");
  window_cursor_ = s.window_cursor;
}

std::string TokenLoader::State::to_json() const {
  std::ostringstream o;
  o << "{\"seed\": " << seed << ", \"batch_size\": " << batch_size << ", \"seq_len\": " << seq_len
    << ", \"random_positions\": " << random_positions << ", \"data_fingerprint\": " << data_fingerprint
    << ", \"epoch\": " << epoch << ", \"shard_cursor\": " << shard_cursor << ", \"window_cursor\": " << window_cursor
    << ", \"rng\": [" << rng[0] << ", " << rng[1] << ", " << rng[2] << ", " << rng[3] << "], \"batches\": " << batches
    << "}";
  return o.str();
}

TokenLoader::State TokenLoader::State::from_json(const std::string& json) {
  // A flat object of integers (and the one 4-integer array "rng"); enough for what to_json writes.
  auto value_at = [&](const std::string& key) -> size_t {
    const size_t k = json.find("\"" + key + "\"");
    if (k == std::string::npos) throw std::invalid_argument("[loader] state JSON has no \"" + key + "\": " + json);
    size_t i = json.find(':', k);
    if (i == std::string::npos) throw std::invalid_argument("[loader] state JSON: no ':' after \"" + key + "\"");
    return i + 1;
  };
  auto parse_int = [&](const std::string& key, size_t& i) -> uint64_t {
    while (i < json.size() && std::isspace((unsigned char)json[i])) ++i;
    bool neg = i < json.size() && json[i] == '-';
    if (neg) ++i;
    if (i >= json.size() || !std::isdigit((unsigned char)json[i]))
      throw std::invalid_argument("[loader] state JSON: \"" + key + "\" is not an integer");
    uint64_t v = 0;
    while (i < json.size() && std::isdigit((unsigned char)json[i])) v = v * 10 + (uint64_t)(json[i++] - '0');
    return neg ? (uint64_t)(-(int64_t)v) : v;
  };
  auto get = [&](const char* key) {
    size_t i = value_at(key);
    return parse_int(key, i);
  };
  State s;
  s.seed = get("seed");
  s.batch_size = (int64_t)get("batch_size");
  s.seq_len = (int64_t)get("seq_len");
  s.random_positions = (int64_t)get("random_positions");
  s.data_fingerprint = get("data_fingerprint");
  s.epoch = get("epoch");
  s.shard_cursor = get("shard_cursor");
  s.window_cursor = get("window_cursor");
  s.batches = get("batches");
  size_t i = value_at("rng");
  while (i < json.size() && std::isspace((unsigned char)json[i])) ++i;
  if (i >= json.size() || json[i] != '[') throw std::invalid_argument("[loader] state JSON: \"rng\" is not an array");
  ++i;
  for (int w = 0; w < 4; ++w) {
    s.rng[w] = parse_int("rng", i);
    while (i < json.size() && (std::isspace((unsigned char)json[i]) || json[i] == ',')) ++i;
  }
  return s;
}

// ---- text files ----------------------------------------------------------------------------------

std::string read_text_file(const std::string& path) {
  std::string data = read_file_bytes(path, "read_text_file");
  const unsigned char zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};  // 0xFD2FB528 little-endian
  if (data.size() < 4 || std::memcmp(data.data(), zstd_magic, 4) != 0) return data;

  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) throw std::runtime_error("[read_text_file] " + path + ": cannot create a zstd context");
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  size_t ret = 0;
  for (;;) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(ret))
      throw std::runtime_error("[read_text_file] " + path + ": zstd error at compressed byte " +
                               std::to_string(in.pos) + ": " + ZSTD_getErrorName(ret));
    out.append(buf.data(), o.pos);
    if (in.pos == in.size && o.pos < o.size) break;  // all input used and nothing left to flush
  }
  if (ret != 0)
    throw std::runtime_error("[read_text_file] " + path +
                             ": truncated zstd stream (the last frame is incomplete after " +
                             std::to_string(out.size()) + " decompressed bytes)");
  return out;
}

void write_zstd_file(const std::string& path, const std::string& data, int zstd_level) {
  std::vector<char> comp(ZSTD_compressBound(data.size()));
  const size_t n = ZSTD_compress(comp.data(), comp.size(), data.data(), data.size(), zstd_level);
  if (ZSTD_isError(n)) throw std::runtime_error("[write_zstd_file] " + path + ": " + ZSTD_getErrorName(n));
  write_file_atomic(path, comp.data(), n, nullptr, 0, "write_zstd_file");
}

}  // namespace sg::data
