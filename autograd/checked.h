// autograd/checked.h — an overflow-checked product for byte-size arithmetic.
//
// Why: a shape comes from a config (`dim: 4611686018427387904`) or a file, and a product that wraps around
// size_t turns into a small size: the allocation succeeds and the first write lands outside it (a segfault).
// Element counts and strides are checked where they are formed (shape_numel, contiguous_strides in
// autograd/tensor.cpp; model_size in models/config.cpp), with __builtin_mul_overflow and a message of their own;
// this is the byte count that follows: elements × dtype size.
//
// `what` names the quantity being computed ("[nbytes] shape (2, 3) of f32"): it starts the message.
// What this is not: saturating arithmetic, or checks for the inner loops of kernels (their sizes were
// checked here when the tensors were made).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace sg {

inline size_t checked_mul_size(size_t a, size_t b, const std::string& what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw std::overflow_error(what + ": " + std::to_string(a) + " * " + std::to_string(b) + " overflows size_t");
  return r;
}

}  // namespace sg
