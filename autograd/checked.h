// autograd/checked.h — overflow-checked products and sums for shape and byte-size arithmetic.
//
// Why: a shape comes from a config (`dim: 4611686018427387904`) or a file, and a product that wraps
// around int64 or size_t turns into a small or negative size: the allocation succeeds and the first
// write lands outside it (a segfault), or a size-class loop never ends. Every product of sizes that
// a user controls goes through these, so such a config is a named error instead.
//
// `what` names the quantity being computed ("[empty] bytes of shape (2, 3)"): it starts the message.
// What this is not: saturating arithmetic, or checks for the inner loops of kernels (their sizes were
// checked here when the tensors were made).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace sg {

[[noreturn]] inline void throw_overflow(const std::string& what, const char* op, const std::string& a,
                                        const std::string& b, const char* type) {
  throw std::overflow_error(what + ": " + a + " " + op + " " + b + " overflows " + type);
}

inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what, "*", std::to_string(a), std::to_string(b), "int64");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_overflow(what, "+", std::to_string(a), std::to_string(b), "int64");
  return r;
}

// Byte counts (size_t): separate names, so a call never picks the other type by an implicit conversion.
inline size_t checked_mul_size(size_t a, size_t b, const std::string& what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_overflow(what, "*", std::to_string(a), std::to_string(b), "size_t");
  return r;
}

inline size_t checked_add_size(size_t a, size_t b, const std::string& what) {
  size_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_overflow(what, "+", std::to_string(a), std::to_string(b), "size_t");
  return r;
}

}  // namespace sg
