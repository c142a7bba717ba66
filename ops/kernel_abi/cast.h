// ops/kernel_abi/cast.h — the dtype cast's arguments (to_dtype), and the conversion of one element that every
// backend's cast kernel runs (ops/cpu/elementwise.cpp, cuda/kernels/cast.cuh), so they agree by construction.
//
// Same rules as ops/kernel_abi/elementwise.h: fixed-width fields and raw pointers (host memory for the CPU and the
// CUDA emulation, device memory for CUDA). Compiles as C++ and CUDA (the low-precision codecs are ops/fp8.h's,
// host and device).
#pragma once
#include <cstdint>
#if !defined(__CUDACC__)
#include <bit>
#endif

#include "ops/fp8.h"                      // lowp:: and SG_HOST_DEVICE
#include "ops/kernel_abi/elementwise.h"   // ElemType, kMaxKernelDims

namespace sg {

// dst[idx] = (dst_type) src[idx · src_strides] over `shape` (ndim dims, row-major, ndim = 0 is one element); dst
// contiguous. Elements are addressed with their own type's size (1, 2, 4 or 8 bytes), so every dtype moves.
struct CastArgs {
  ElemType src_type;
  ElemType dst_type;
  int32_t ndim;
  int64_t shape[kMaxKernelDims];
  int64_t src_strides[kMaxKernelDims];
  const void* src;
  void* dst;
};

namespace cast_element {

#if defined(__CUDACC__)
SG_HOST_DEVICE inline uint64_t bits_of(double x) { return __builtin_bit_cast(uint64_t, x); }
SG_HOST_DEVICE inline double double_of(uint64_t b) { return __builtin_bit_cast(double, b); }
#else
inline uint64_t bits_of(double x) { return std::bit_cast<uint64_t>(x); }
inline double double_of(uint64_t b) { return std::bit_cast<double>(b); }
#endif

// f32 -> double and back, exact for every number. A NaN is spelled out in bits, as x86's cvtss2sd / cvtsd2ss
// treat it (made quiet, sign and the top payload bits kept), so that no backend and no compiler differ on it: a
// GPU's conversion need not keep the payload, and a compiler folds (float)(double) f to f, which keeps a
// signaling NaN signaling where the hardware conversion quiets it.
SG_HOST_DEVICE inline double widen(float f) {
  const uint32_t b = lowp::detail::bits_of(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u)
    return double_of((uint64_t)(b >> 31) << 63 | 0x7FF8000000000000ull | (uint64_t)(b & 0x3FFFFFu) << 29);
  return (double)f;
}
SG_HOST_DEVICE inline float narrow(double v) {
  const uint64_t b = bits_of(v);
  if ((b & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull)
    return lowp::detail::float_of((uint32_t)(b >> 63) << 31 | 0x7FC00000u | (uint32_t)((b >> 29) & 0x3FFFFFu));
  return (float)v;
}

// Element i of a buffer of type t as a double, as Tensor::to_f64_vector reads it: exact for every type but an i64
// beyond 2^53, which rounds to nearest (even); the storage formats decode exactly (ops/fp8.h); NaN as widen says.
SG_HOST_DEVICE inline double load(const void* p, int64_t i, ElemType t) {
  switch (t) {
    case ElemType::f32: return widen(static_cast<const float*>(p)[i]);
    case ElemType::f64: return static_cast<const double*>(p)[i];
    case ElemType::i32: return (double)static_cast<const int32_t*>(p)[i];
    case ElemType::i64: return (double)static_cast<const int64_t*>(p)[i];
    case ElemType::bf16: return widen(lowp::bf16_to_f32(static_cast<const uint16_t*>(p)[i]));
    case ElemType::f16: return widen(lowp::f16_to_f32(static_cast<const uint16_t*>(p)[i]));
    case ElemType::f8e4m3: return widen(lowp::e4m3_to_f32(static_cast<const uint8_t*>(p)[i]));
    case ElemType::f8e5m2: return widen(lowp::e5m2_to_f32(static_cast<const uint8_t*>(p)[i]));
  }
  return 0.0;
}

// v stored as element i of a buffer of type t:
//   f32          one rounding from double, to nearest even (a NaN: widen / narrow above);
//   i32, i64     C++'s conversion, toward zero. A value outside the type's range, or NaN, has no defined result:
//                the CPU (x86) writes the type's minimum, a GPU saturates (NaN -> 0). Keep casts in range;
//   bf16, f16,   via f32 first (double -> f32 -> format, each to nearest even: what to_dtype always did; from an
//   f8e4m3/e5m2  f32 source the first step is exact), then lowp::'s encoder: E4M3 saturates at ±448 (and ±inf
//                becomes ±448), E5M2 and f16 overflow to ±inf, bf16 to ±inf; NaN stays NaN.
SG_HOST_DEVICE inline void store(void* p, int64_t i, ElemType t, double v) {
  switch (t) {
    case ElemType::f32: static_cast<float*>(p)[i] = narrow(v); return;
    case ElemType::f64: static_cast<double*>(p)[i] = v; return;
    case ElemType::i32: static_cast<int32_t*>(p)[i] = (int32_t)v; return;
    case ElemType::i64: static_cast<int64_t*>(p)[i] = (int64_t)v; return;
    case ElemType::bf16: static_cast<uint16_t*>(p)[i] = lowp::f32_to_bf16(narrow(v)); return;
    case ElemType::f16: static_cast<uint16_t*>(p)[i] = lowp::f32_to_f16(narrow(v)); return;
    case ElemType::f8e4m3: static_cast<uint8_t*>(p)[i] = lowp::f32_to_e4m3(narrow(v)); return;
    case ElemType::f8e5m2: static_cast<uint8_t*>(p)[i] = lowp::f32_to_e5m2(narrow(v)); return;
  }
}

}  // namespace cast_element

}  // namespace sg
