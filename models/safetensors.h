// models/safetensors.h — read and write HuggingFace .safetensors files (independent of Tensor).
//
// The format (https://github.com/huggingface/safetensors):
//   bytes [0, 8)        N, the header length, uint64 little-endian
//   bytes [8, 8+N)      a JSON object, padded with spaces to a multiple of 8 bytes:
//                         {"<name>": {"dtype": "F32", "shape": [512, 128], "data_offsets": [b, e]},
//                          ...,
//                          "__metadata__": {"format": "pt"}}          (optional, string -> string)
//   bytes [8+N, end)    the data buffer; tensor <name> is bytes [8+N+b, 8+N+e), row-major,
//                       little-endian. The tensors tile the buffer exactly: no holes, no overlaps,
//                       nothing after the last tensor.
//
// What it is: read_safetensors() loads every tensor's raw bytes after checking all of the above,
// with errors that name the path, the tensor and the offsets; write_safetensors() writes tensors in
// the order given (their header entries and data in that order, "__metadata__" last, as the fixture
// files in tests/fixtures/ are laid out) to `path + ".tmp"` and renames it over `path`, so no
// half-written file ever sits at `path`. Plus hand-written f32 <-> bf16/f16 conversions (round to
// nearest, ties to even) and helpers to move data between StTensor bytes and float/int64 arrays.
//
// What it is not: memory mapping, lazy loading, sharded checkpoints (model.safetensors.index.json),
// FP8 decoding (FP8 bytes are carried as they are; decoding needs the scales, see the FP8 code), or
// HF name mapping (that lives with the model). Assumes a little-endian host (x86, ARM, Apple).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// The safetensors dtypes this project uses, with their on-disk names ("F32", "BF16", "F8_E4M3"...).
enum class StDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

const char* st_dtype_name(StDType dtype);                       // StDType::BF16 -> "BF16"
std::optional<StDType> st_dtype_from_name(std::string_view name);  // "BF16" -> StDType::BF16
size_t st_dtype_size(StDType dtype);                            // bytes per element

// A tensor as stored in the file: raw little-endian bytes, row-major.
struct StTensor {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;  // [] is a scalar (1 element); a 0 anywhere means no elements
  std::vector<uint8_t> bytes;  // numel() * st_dtype_size(dtype) bytes

  int64_t numel() const;
};

struct SafeTensorsFile {
  std::string path;                           // where it was read from (used in errors)
  std::vector<StTensor> tensors;              // in header order
  std::map<std::string, std::string> metadata;  // "__metadata__"

  // get() throws "[safetensors] <path>: no tensor named 'x' (131 tensors; closest names: ...)".
  const StTensor& get(std::string_view name) const;
  const StTensor* find(std::string_view name) const;  // nullptr when absent
  bool contains(std::string_view name) const { return find(name) != nullptr; }
};

// Reads and validates the whole file. Errors are std::runtime_error("[safetensors] <path>: ...").
SafeTensorsFile read_safetensors(const std::string& path);

// Writes tensors in the given order; names must be unique and non-empty, and each tensor's bytes
// must match its shape and dtype. Atomic: writes `path + ".tmp"`, then renames it to `path`; on any
// error the .tmp file is removed and an existing file at `path` is left untouched. (Atomic against
// crashes of this process and concurrent readers; without an fsync, not against power loss.)
void write_safetensors(const std::string& path, const std::vector<StTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// ---- f32 <-> bf16 / f16 (forwarded to the one implementation in ops/fp8.h) -------------------
// bf16 = the top 16 bits of an f32 (1 sign, 8 exponent, 7 mantissa bits).
// f16  = IEEE binary16 (1 sign, 5 exponent bits with bias 15, 10 mantissa bits; max 65504,
//        smallest subnormal 2^-24).
// f32 -> 16 bits rounds to nearest, ties to even; overflow goes to +-inf; NaN stays a (quiet) NaN
// with its sign; subnormal results are produced exactly. 16 bits -> f32 is exact.
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);

// ---- StTensor <-> arrays ------------------------------------------------------------------------
// to_f32 / to_f64 read F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL (integers converted to the
// nearest float); FP8 is an error (it needs its block scales). to_i64 reads the integer dtypes and
// BOOL. A wrong dtype throws naming the tensor.
std::vector<float> to_f32(const StTensor& t);
std::vector<double> to_f64(const StTensor& t);
std::vector<int64_t> to_i64(const StTensor& t);

// Builds a tensor from numel(shape) values at `data`, stored as `dtype`: F32, F64, F16 or BF16
// for from_f32 (rounded as above); I64, I32, I16, I8, U8 or BOOL for from_i64 (a value that does
// not fit is an error naming the index).
StTensor from_f32(std::string name, std::vector<int64_t> shape, const float* data,
                  StDType dtype = StDType::F32);
StTensor from_i64(std::string name, std::vector<int64_t> shape, const int64_t* data,
                  StDType dtype = StDType::I64);

// "[2,3]" — shapes in error messages.
std::string st_shape_str(const std::vector<int64_t>& shape);

}  // namespace sg
