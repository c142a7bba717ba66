// tests/fuzz/driver.cpp — a main() for the fuzz targets when there is no libFuzzer (gcc builds, and the
// normal CTest suite): it calls the same LLVMFuzzerTestOneInput.
//
//   fuzz_<target> [--mutate N] [--seed S] [--max-seconds T] [--crash-dir D] [--must-accept DIR] PATH...
//
// Runs every file under the PATHs (directories walked recursively, files in sorted order) as one
// input; --must-accept DIR adds DIR's files and fails (exit 1) when the parser rejects one of them
// unmutated (the seeds: a rejected seed means the target never gets past the parser's first checks);
// with --mutate N, also N mutations of each (a small deterministic mutator: the same seed gives
// the same inputs). A target returns normally for every input it handles; a crash, an abort or a
// sanitizer report ends the process, and before that the input that did it is written to the crash
// directory (default: the working directory) as crash-<target>-<n>, which the mutator's messages name.
// Exit status: 0 = every input ran, 1 = a --must-accept file was rejected, 2 = bad usage or no inputs;
// a finding exits as the crash does.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Set by ASan/UBSan builds (weak: absent otherwise): called just before a sanitizer ends the process.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

namespace fs = std::filesystem;

// The input now running, for the crash handlers (plain globals: a signal handler may only read memory).
const uint8_t* g_input = nullptr;
size_t g_input_size = 0;
char g_crash_path[4096] = "";

// Async-signal-safe: open/write/close only.
void save_current_input() {
  if (!g_input || !g_crash_path[0]) return;
  const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  for (size_t off = 0; off < g_input_size;) {
    const ssize_t n = ::write(fd, g_input + off, g_input_size - off);
    if (n <= 0) break;
    off += (size_t)n;
  }
  ::close(fd);
  static const char msg[] = "\n[fuzz] the input that crashed is saved as ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
  (void)!::write(2, "\n", 1);
}

void on_signal(int sig) {
  save_current_input();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// xoshiro-free and tiny: splitmix64 is enough to pick mutations.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : (size_t)(next() % n); }
};

// Tokens that parsers treat specially: JSON/YAML punctuation, numbers at the edges of int64/double,
// and the magic words of this project's formats.
const char* const kDictionary[] = {
    "{", "}", "[", "]", ":", ",", "\"", "\\u0000", "\\ud800", "-", "0", "-1", "1e999", "-0", "NaN", "Infinity",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551615", "4294967296",
    "65536", "1.5", "null", "true", "false", "\n", "\n  ", "- ", "&a", "*a", "!!binary", "? ", "|", ">", "#",
    "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"BF16\"", "\"F8_E4M3\"", "\"I64\"", "\"__metadata__\"",
    "SGTOKSH1", "seekgrad-bpe 1", "merge ", "special ", "vocab_size ", "\"hidden_size\"", "\"num_hidden_layers\"",
    "\"step\"", "\"loader\"", "\"rng\"", "model:", "train:", "dim:", "steps:", "\xff\xff\xff\xff", "\x00\x00\x00\x00",
};

std::vector<uint8_t> mutate(const std::vector<uint8_t>& in, const std::vector<std::vector<uint8_t>>& corpus,
                            Rng& rng, size_t max_len) {
  std::vector<uint8_t> d = in;
  const int n_ops = 1 + (int)rng.below(4);
  for (int op = 0; op < n_ops; ++op) {
    const size_t pos = rng.below(d.size() + 1);
    switch (rng.below(9)) {
      case 0:  // flip one bit
        if (!d.empty()) d[rng.below(d.size())] ^= (uint8_t)(1u << rng.below(8));
        break;
      case 1:  // one byte to a random or boundary value
        if (!d.empty()) {
          static const uint8_t edge[] = {0, 1, 0x7f, 0x80, 0xff, '0', '9', '"', '\\', '\n', ' '};
          d[rng.below(d.size())] = rng.below(2) ? (uint8_t)rng.next() : edge[rng.below(sizeof edge)];
        }
        break;
      case 2:  // insert random bytes
        d.insert(d.begin() + pos, 1 + rng.below(8), (uint8_t)rng.next());
        break;
      case 3:  // delete a range
        if (!d.empty()) {
          const size_t at = rng.below(d.size());
          d.erase(d.begin() + at, d.begin() + at + 1 + rng.below(std::min<size_t>(d.size() - at, 16)));
        }
        break;
      case 4:  // truncate
        d.resize(rng.below(d.size() + 1));
        break;
      case 5: {  // duplicate a range (repetition: deep nesting, long lists)
        if (d.empty()) break;
        const size_t at = rng.below(d.size()), len = 1 + rng.below(std::min<size_t>(d.size() - at, 64));
        const std::vector<uint8_t> piece(d.begin() + at, d.begin() + at + len);
        const size_t times = 1 + rng.below(rng.below(4) == 0 ? 300 : 4);
        for (size_t t = 0; t < times && d.size() < max_len; ++t) d.insert(d.begin() + pos, piece.begin(), piece.end());
        break;
      }
      case 6: {  // splice: this input's prefix + another corpus file's suffix
        const auto& other = corpus[rng.below(corpus.size())];
        const size_t from = rng.below(other.size() + 1);
        d.resize(pos);
        d.insert(d.end(), other.begin() + from, other.end());
        break;
      }
      case 7: {  // insert or overwrite with a dictionary token
        const char* tok = kDictionary[rng.below(sizeof kDictionary / sizeof kDictionary[0])];
        const size_t len = std::max<size_t>(1, std::strlen(tok));  // the NUL entries: one byte
        if (rng.below(2) && pos + len <= d.size())
          std::memcpy(d.data() + pos, tok, len);
        else
          d.insert(d.begin() + pos, tok, tok + len);
        break;
      }
      case 8:  // a little-endian integer at a random place (binary headers: lengths, counts, offsets)
        if (d.size() >= 8) {
          const size_t at = rng.below(d.size() - 7);
          static const uint64_t ints[] = {0, 1, 7, 8, 63, 64, 0x7fffffffULL, 0xffffffffULL, 0x7fffffffffffffffULL,
                                          0x8000000000000000ULL, ~0ULL, 1ULL << 32, 100000000};
          uint64_t v = rng.below(2) ? ints[rng.below(sizeof ints / sizeof ints[0])] : rng.next();
          if (rng.below(3) == 0) {  // nudge the existing value: off-by-one lengths
            uint64_t old;
            std::memcpy(&old, d.data() + at, 8);
            v = old + (uint64_t)((int64_t)rng.below(17) - 8);
          }
          std::memcpy(d.data() + at, &v, rng.below(2) ? 8 : 4);
        }
        break;
    }
    if (d.size() > max_len) d.resize(max_len);
  }
  return d;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--mutate N] [--seed S] [--max-seconds T] [--max-len L] [--crash-dir D] [--must-accept DIR] "
               "PATH...\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = fs::path(argv[0]).filename().string();
  long long n_mutations = 0;
  uint64_t seed = 1;
  double max_seconds = 0;  // 0: no limit
  size_t max_len = 1 << 20;
  std::string crash_dir = ".";
  std::vector<fs::path> files;
  std::vector<fs::path> must_accept;
  auto add_path = [&](const std::string& a, std::vector<fs::path>& to) {
    if (fs::is_directory(a)) {
      for (const auto& e : fs::recursive_directory_iterator(a))
        if (e.is_regular_file()) to.push_back(e.path());
    } else if (fs::is_regular_file(a)) {
      to.push_back(a);
    } else {
      std::fprintf(stderr, "[fuzz] %s: no such file or directory: %s\n", target.c_str(), a.c_str());
      return false;
    }
    return true;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--mutate" || a == "--seed" || a == "--max-seconds" || a == "--max-len" || a == "--crash-dir" ||
        a == "--must-accept") {
      if (!(v = value())) return usage(argv[0]);
      if (a == "--mutate") n_mutations = std::atoll(v);
      if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
      if (a == "--max-seconds") max_seconds = std::atof(v);
      if (a == "--max-len") max_len = (size_t)std::atoll(v);
      if (a == "--crash-dir") crash_dir = v;
      if (a == "--must-accept" && !add_path(v, must_accept)) return 2;
    } else if (a.rfind("--", 0) == 0) {
      return usage(argv[0]);
    } else if (!add_path(a, files)) {
      return 2;
    }
  }
  std::sort(must_accept.begin(), must_accept.end());
  std::sort(files.begin(), files.end());
  files.insert(files.begin(), must_accept.begin(), must_accept.end());
  if (files.empty()) return usage(argv[0]);

  std::snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-%s-%d", crash_dir.c_str(), target.c_str(), (int)::getpid());
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_current_input);

  std::vector<std::vector<uint8_t>> corpus;
  for (const auto& f : files) corpus.push_back(read_bytes(f));
  const auto t0 = std::chrono::steady_clock::now();
  auto run = [&](const std::vector<uint8_t>& input) {
    g_input = input.data();
    g_input_size = input.size();
    LLVMFuzzerTestOneInput(input.data(), input.size());
    g_input = nullptr;
  };
  long long executions = 0;
  for (size_t i = 0; i < corpus.size(); ++i, ++executions) {
    const long long before = sg::fuzz::accepted_count();
    run(corpus[i]);
    if (i < must_accept.size() && sg::fuzz::accepted_count() == before) {
      std::fprintf(stderr, "[fuzz] %s: the parser rejects the seed %s: the target does not reach its success path\n",
                   target.c_str(), files[i].c_str());
      return 1;
    }
  }
  Rng rng{seed};
  bool out_of_time = false;
  for (long long m = 0; m < n_mutations && !out_of_time; ++m)
    for (size_t i = 0; i < corpus.size(); ++i, ++executions) {
      run(mutate(corpus[i], corpus, rng, max_len));
      if (max_seconds > 0 && (executions & 63) == 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > max_seconds) {
        out_of_time = true;
        break;
      }
    }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fuzz] %s: %lld executions (%zu files, seed %llu%s), %lld accepted by the parser, in %.2f s, "
              "no findings\n",
              target.c_str(), executions, corpus.size(), (unsigned long long)seed,
              out_of_time ? ", stopped at the time limit" : "", sg::fuzz::accepted_count(), secs);
  return 0;
}
