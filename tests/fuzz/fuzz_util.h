// tests/fuzz/fuzz_util.h — what the fuzz targets share: a per-process scratch directory for the parsers
// whose public API takes a path, and the one way a target reports a broken invariant.
//
// Each target (tests/fuzz/fuzz_<name>.cpp) defines libFuzzer's entry point
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
// and catches std::exception: the project's documented errors (documented_error() below; bad_alloc and
// length_error excepted). Anything else — a crash, an abort, a
// sanitizer report, an uncaught non-std exception, or fuzz_check() failing — is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>

namespace sg::fuzz {

// /dev/shm when there is one (a RAM disk: the file round trip costs microseconds), else the temp dir;
// the pid in the name keeps parallel fuzzers (libFuzzer -jobs, CTest -j) apart. Removed at exit.
inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      std::filesystem::path base = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                       : std::filesystem::temp_directory_path();
      path = base / ("seekgrad_fuzz_" + std::to_string(::getpid()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

inline void write_file(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), (std::streamsize)size);
  if (!f) {
    std::fprintf(stderr, "[fuzz] cannot write %s\n", path.c_str());
    std::abort();
  }
}

// The bytes in a file named `name` in the scratch directory; returns its path.
inline std::string bytes_to_file(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch_dir() / name;
  write_file(path, data, size);
  return path.string();
}

// Targets call this when the parser accepted the input (got past every check): the driver counts these,
// and with --must-accept fails when a seed is rejected, which would mean the target never reaches the
// parser's success path (a wrong path, a checksum the mutations never match, ...).
inline long long& accepted_count() {
  static long long n = 0;
  return n;
}
inline void note_accepted() { ++accepted_count(); }

// Every target's catch (const std::exception& e) calls this: the error is a documented one (returns) or a
// finding (aborts). Findings: std::bad_alloc and std::length_error (the input sized an allocation: a length
// field believed before it was checked, which a real run would also fail on, or worse, succeed at and spend
// gigabytes), and a message that does not start with "[<who>]" (the project's errors name the reader and
// the file, "[shard] path: ..."; a bare library message, say yaml-cpp's "bad conversion", leaves the user
// guessing which file and key). SEEKGRAD_FUZZ_ERRORS=1 prints each error (to read what a target produces).
inline void documented_error(const std::exception& e) {
  static const bool print = std::getenv("SEEKGRAD_FUZZ_ERRORS") != nullptr;
  if (print) std::fprintf(stderr, "[fuzz] error: %s\n", e.what());
  if (dynamic_cast<const std::bad_alloc*>(&e) || dynamic_cast<const std::length_error*>(&e)) {
    std::fprintf(stderr, "[fuzz] an allocation sized by the input failed: %s\n", e.what());
    std::abort();
  }
  if (e.what()[0] != '[') {
    std::fprintf(stderr, "[fuzz] an error that does not say which reader and file: %s\n", e.what());
    std::abort();
  }
}

// An invariant the parser promises (a value it accepted writes and reads back the same): a finding if false.
inline void fuzz_check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "[fuzz] invariant broken: %s\n", what);
  std::abort();
}

}  // namespace sg::fuzz
