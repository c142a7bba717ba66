// ops/cpu/copy.h — the strided copy kernel: every "make it contiguous", slice-backward and cat
// goes through this one loop.
#pragma once
#include <cstdint>
#include <vector>

namespace sg::cpu {

// dst[i0,..,in] = src[i0,..,in] for every index of `shape`; both sides addressed by their own strides
// (in elements). Innermost dimension runs as a plain loop.
template <class T>
void strided_copy(const std::vector<int64_t>& shape, const T* src, const std::vector<int64_t>& src_strides, T* dst,
                  const std::vector<int64_t>& dst_strides) {
  int64_t nd = (int64_t)shape.size();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n == 0) return;
  if (nd == 0) {
    dst[0] = src[0];
    return;
  }
  int64_t inner = shape[nd - 1], s_in = src_strides[nd - 1], d_in = dst_strides[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  int64_t outer = n / inner;
  for (int64_t o = 0; o < outer; o++) {
    int64_t so = 0, dof = 0;
    for (int64_t d = 0; d < nd - 1; d++) {
      so += idx[d] * src_strides[d];
      dof += idx[d] * dst_strides[d];
    }
    const T* s = src + so;
    T* t = dst + dof;
    if (s_in == 1 && d_in == 1)
      for (int64_t i = 0; i < inner; i++) t[i] = s[i];
    else
      for (int64_t i = 0; i < inner; i++) t[i * d_in] = s[i * s_in];
    for (int64_t d = nd - 2; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace sg::cpu
