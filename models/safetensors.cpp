// models/safetensors.cpp — safetensors reader/writer and the f32 <-> bf16/f16 conversions.
// See safetensors.h for the file layout and what is (not) supported.
#include "models/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>

#include "models/json.h"
#include "ops/fp8.h"

namespace sg {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies bytes as they are");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

struct DTypeInfo {
  StDType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {StDType::F64, "F64", 8},   {StDType::F32, "F32", 4},   {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2}, {StDType::I64, "I64", 8},   {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2},   {StDType::I8, "I8", 1},     {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1}, {StDType::F8_E4M3, "F8_E4M3", 1},
    {StDType::F8_E5M2, "F8_E5M2", 1},
};

std::string known_dtype_names() {
  std::string s;
  for (const auto& d : kDTypes) s += (s.empty() ? "" : " ") + std::string(d.name);
  return s;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("[safetensors] " + path + ": " + what);
}

// Bytes needed by `shape` of `dtype`, or nullopt when a dimension is negative or the count
// overflows.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, StDType dtype) {
  uint64_t n = st_dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / 2 / (uint64_t)d) return std::nullopt;
    n *= (uint64_t)d;
  }
  return n;
}

std::string offsets_str(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
}

using FilePtr = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

}  // namespace

// ---- dtypes -------------------------------------------------------------------------------------

const char* st_dtype_name(StDType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::optional<StDType> st_dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

size_t st_dtype_size(StDType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

std::string st_shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- lookup -------------------------------------------------------------------------------------

const StTensor* SafeTensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const StTensor& SafeTensorsFile::get(std::string_view name) const {
  if (const StTensor* t = find(name)) return *t;
  // Suggest the names sharing the longest prefix with the one asked for (typos in layer paths).
  std::vector<std::pair<size_t, size_t>> by_prefix;  // (common prefix length, index)
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string& n = tensors[i].name;
    size_t k = 0;
    while (k < n.size() && k < name.size() && n[k] == name[k]) ++k;
    by_prefix.emplace_back(k, i);
  }
  std::stable_sort(by_prefix.begin(), by_prefix.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::string msg = "no tensor named '" + std::string(name) + "' (" +
                    std::to_string(tensors.size()) + " tensors";
  for (size_t i = 0; i < by_prefix.size() && i < 5; ++i)
    msg += (i ? ", '" : "; closest names: '") + tensors[by_prefix[i].second].name + "'";
  fail(path.empty() ? "<in memory>" : path, msg + ")");
}

// ---- reading ------------------------------------------------------------------------------------

SafeTensorsFile read_safetensors(const std::string& path) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read the file: " + ec.message());
  FilePtr f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail(path, std::string("cannot open the file: ") + std::strerror(errno));
  auto read_exact = [&](void* dst, uint64_t n, uint64_t at, const std::string& what) {
    if (n > 0 && std::fread(dst, 1, n, f.get()) != n)
      fail(path, "read error at byte " + std::to_string(at) + " while reading " + what);
  };

  // 1. The header length.
  if (file_size < 8)
    fail(path, "file is " + std::to_string(file_size) +
                   " bytes, too short for the 8-byte header length");
  uint8_t len_bytes[8];
  read_exact(len_bytes, 8, 0, "the header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];  // little-endian
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) +
                   " (the uint64 at bytes 0-7) is larger than the rest of the file (" +
                   std::to_string(file_size - 8) + " bytes)");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " is over the " +
                   std::to_string(kMaxHeaderBytes) + "-byte limit");

  // 2. The JSON header.
  std::string header_text(header_len, '\0');
  read_exact(header_text.data(), header_len, 8, "the header");
  Json header;
  try {
    header = Json::parse(header_text, path + " (header)");
  } catch (const std::runtime_error& e) {
    fail(path, "invalid JSON header (file bytes [8," + std::to_string(8 + header_len) +
                   "); header column c is file byte 7+c): " + e.what());
  }
  if (!header.is_object())
    fail(path, std::string("the header is a JSON ") + header.type_name() +
                   ", expected an object {name: {dtype, shape, data_offsets}}");

  // 3. Each entry: dtype, shape, data_offsets, and the size they imply.
  SafeTensorsFile file;
  file.path = path;
  struct Span {
    uint64_t begin, end;
    size_t index;  // into file.tensors
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail(path, std::string("__metadata__ is a ") + entry.type_name() +
                       ", expected an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail(path, "__metadata__['" + key + "'] is a " + value.type_name() +
                         ", expected a string");
        file.metadata[key] = value.get_string();
      }
      continue;
    }
    StTensor t;
    t.name = name;
    uint64_t begin = 0, end = 0;
    try {
      if (!entry.is_object())
        throw std::runtime_error(std::string("entry is a ") + entry.type_name() +
                                 ", expected {\"dtype\", \"shape\", \"data_offsets\"}");
      for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(key)) throw std::runtime_error(std::string("missing \"") + key + "\"");
      const std::string& dtype_name = entry.at("dtype").get_string();
      const auto dtype = st_dtype_from_name(dtype_name);
      if (!dtype)
        throw std::runtime_error("unknown dtype '" + dtype_name + "' (known: " +
                                 known_dtype_names() + ")");
      t.dtype = *dtype;
      for (const Json& d : entry.at("shape").elements()) t.shape.push_back(d.get_int());
      const Json& offsets = entry.at("data_offsets");
      if (offsets.size() != 2 || offsets[0].get_int() < 0 || offsets[1].get_int() < 0)
        throw std::runtime_error("data_offsets " + offsets.dump() +
                                 " must be two non-negative integers [begin,end]");
      begin = (uint64_t)offsets[0].get_int();
      end = (uint64_t)offsets[1].get_int();
      if (end < begin)
        throw std::runtime_error("data_offsets " + offsets_str(begin, end) +
                                 " end before they begin");
      const auto nbytes = checked_nbytes(t.shape, t.dtype);
      if (!nbytes)
        throw std::runtime_error("shape " + st_shape_str(t.shape) +
                                 " has a negative dimension or too many elements");
      if (*nbytes != end - begin)
        throw std::runtime_error("shape " + st_shape_str(t.shape) + " " + dtype_name + " needs " +
                                 std::to_string(*nbytes) + " bytes but data_offsets span " +
                                 std::to_string(end - begin) + " " + offsets_str(begin, end));
    } catch (const std::runtime_error& e) {
      fail(path, "tensor '" + name + "': " + e.what());
    }
    spans.push_back({begin, end, file.tensors.size()});
    file.tensors.push_back(std::move(t));
  }

  // 4. The spans must tile the data buffer: sorted by offset, each begins where the last ended.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t buffer_end = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    const std::string& name = file.tensors[s.index].name;
    if (s.begin < buffer_end) {
      const Span& prev = spans[i - 1];
      fail(path, "tensors '" + file.tensors[prev.index].name + "' (data_offsets " +
                     offsets_str(prev.begin, prev.end) + ") and '" + name + "' (data_offsets " +
                     offsets_str(s.begin, s.end) + ") overlap");
    }
    if (s.begin > buffer_end)
      fail(path, "bytes [" + std::to_string(buffer_end) + "," + std::to_string(s.begin) +
                     ") of the data buffer belong to no tensor (the gap before '" + name +
                     "'); the format allows no holes");
    buffer_end = s.end;
  }

  // 5. The file must hold exactly the data buffer.
  const uint64_t data_start = 8 + header_len;
  for (const Span& s : spans)
    if (data_start + s.end > file_size)
      fail(path, "file is " + std::to_string(file_size) + " bytes but tensor '" +
                     file.tensors[s.index].name + "' ends at byte " +
                     std::to_string(data_start + s.end) + " (data starts at byte " +
                     std::to_string(data_start) + ", data_offsets " + offsets_str(s.begin, s.end) +
                     "): the file is truncated");
  if (data_start + buffer_end < file_size)
    fail(path, "file is " + std::to_string(file_size) + " bytes but its last tensor ends at byte " +
                   std::to_string(data_start + buffer_end) + ": " +
                   std::to_string(file_size - data_start - buffer_end) +
                   " unexplained trailing bytes");

  // 6. The data, read front to back in offset order.
  for (const Span& s : spans) {
    StTensor& t = file.tensors[s.index];
    t.bytes.resize(s.end - s.begin);
    read_exact(t.bytes.data(), t.bytes.size(), data_start + s.begin, "tensor '" + t.name + "'");
  }
  return file;
}

// ---- writing ------------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<StTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // 1. Check the tensors and lay out the header (tensors in the given order, metadata last).
  Json::Object header;  // built as a plain vector: Json::set() would rescan it for every tensor
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const StTensor& t : tensors) {
    const std::string where = "cannot write tensor '" + t.name + "'";
    if (t.name.empty()) fail(path, "cannot write a tensor with an empty name");
    if (t.name == "__metadata__") fail(path, where + ": the name is reserved for metadata");
    if (!names.insert(t.name).second) fail(path, where + ": the name appears twice");
    const auto nbytes = checked_nbytes(t.shape, t.dtype);
    if (!nbytes)
      fail(path, where + ": shape " + st_shape_str(t.shape) +
                     " has a negative dimension or too many elements");
    if (*nbytes != t.bytes.size())
      fail(path, where + ": shape " + st_shape_str(t.shape) + " " + st_dtype_name(t.dtype) +
                     " needs " + std::to_string(*nbytes) + " bytes but it holds " +
                     std::to_string(t.bytes.size()));
    Json shape = Json::array();
    for (int64_t d : t.shape) shape.push_back(Json((long long)d));
    const Json::Array offsets{Json((unsigned long long)offset),
                              Json((unsigned long long)(offset + *nbytes))};
    header.emplace_back(t.name, Json(Json::Object{{"dtype", st_dtype_name(t.dtype)},
                                                  {"shape", std::move(shape)},
                                                  {"data_offsets", offsets}}));
    offset += *nbytes;
  }
  if (!metadata.empty()) {
    Json::Object meta;
    for (const auto& [key, value] : metadata) meta.emplace_back(key, value);
    header.emplace_back("__metadata__", Json(std::move(meta)));
  }
  std::string header_text = Json(std::move(header)).dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');  // pad to 8 bytes, as the reference
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = (uint8_t)((uint64_t)header_text.size() >> (8 * i));

  // 2. Write everything to path.tmp.
  const std::string tmp = path + ".tmp";
  {
    FilePtr f(std::fopen(tmp.c_str(), "wb"), &std::fclose);
    if (!f) fail(path, "cannot create '" + tmp + "': " + std::strerror(errno));
    auto write_all = [&](const void* src, size_t n, const std::string& what) {
      if (n > 0 && std::fwrite(src, 1, n, f.get()) != n) {
        const int err = errno;
        f.reset();
        std::remove(tmp.c_str());
        fail(path, "writing " + what + " to '" + tmp + "' failed: " + std::strerror(err));
      }
    };
    write_all(len_bytes, 8, "the header length");
    write_all(header_text.data(), header_text.size(), "the header");
    for (const StTensor& t : tensors)
      write_all(t.bytes.data(), t.bytes.size(), "tensor '" + t.name + "'");
    if (std::fclose(f.release()) != 0) {  // a full disk may only show up here
      const int err = errno;
      std::remove(tmp.c_str());
      fail(path, "closing '" + tmp + "' failed: " + std::strerror(err));
    }
  }

  // 3. Move it into place in one step.
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(path, "cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  }
}

// ---- f32 <-> bf16 / f16 -------------------------------------------------------------------------

// The one implementation lives in ops/fp8.h (shared with the FP8 formats and the GPU backends).
uint16_t f32_to_bf16(float x) { return lowp::f32_to_bf16(x); }
float bf16_to_f32(uint16_t h) { return lowp::bf16_to_f32(h); }
uint16_t f32_to_f16(float x) { return lowp::f32_to_f16(x); }
float f16_to_f32(uint16_t h) { return lowp::f16_to_f32(h); }

// ---- StTensor <-> arrays ------------------------------------------------------------------------

namespace {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void check_size(const StTensor& t, const char* fn) {
  const auto nbytes = checked_nbytes(t.shape, t.dtype);
  if (!nbytes || *nbytes != t.bytes.size())
    throw std::runtime_error(std::string("[safetensors] ") + fn + ": tensor '" + t.name +
                             "': shape " + st_shape_str(t.shape) + " " + st_dtype_name(t.dtype) +
                             " needs " + (nbytes ? std::to_string(*nbytes) : "?") +
                             " bytes but it holds " + std::to_string(t.bytes.size()));
}

template <class Out>
std::vector<Out> to_floating(const StTensor& t, const char* fn) {
  check_size(t, fn);
  const size_t n = (size_t)t.numel();
  const uint8_t* p = t.bytes.data();
  std::vector<Out> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case StDType::F64: out[i] = (Out)load<double>(p + 8 * i); break;
      case StDType::F32: out[i] = (Out)load<float>(p + 4 * i); break;
      case StDType::F16: out[i] = (Out)f16_to_f32(load<uint16_t>(p + 2 * i)); break;
      case StDType::BF16: out[i] = (Out)bf16_to_f32(load<uint16_t>(p + 2 * i)); break;
      case StDType::I64: out[i] = (Out)load<int64_t>(p + 8 * i); break;
      case StDType::I32: out[i] = (Out)load<int32_t>(p + 4 * i); break;
      case StDType::I16: out[i] = (Out)load<int16_t>(p + 2 * i); break;
      case StDType::I8: out[i] = (Out)(int8_t)p[i]; break;
      case StDType::U8: out[i] = (Out)p[i]; break;
      case StDType::BOOL: out[i] = (Out)(p[i] != 0); break;
      case StDType::F8_E4M3:
      case StDType::F8_E5M2:
        throw std::runtime_error(std::string("[safetensors] ") + fn + ": tensor '" + t.name +
                                 "' is " + st_dtype_name(t.dtype) +
                                 "; FP8 needs its block scales, decode it with the FP8 code");
    }
  }
  return out;
}

}  // namespace

std::vector<float> to_f32(const StTensor& t) { return to_floating<float>(t, "to_f32"); }
std::vector<double> to_f64(const StTensor& t) { return to_floating<double>(t, "to_f64"); }

std::vector<int64_t> to_i64(const StTensor& t) {
  check_size(t, "to_i64");
  const size_t n = (size_t)t.numel();
  const uint8_t* p = t.bytes.data();
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    switch (t.dtype) {
      case StDType::I64: out[i] = load<int64_t>(p + 8 * i); break;
      case StDType::I32: out[i] = load<int32_t>(p + 4 * i); break;
      case StDType::I16: out[i] = load<int16_t>(p + 2 * i); break;
      case StDType::I8: out[i] = (int8_t)p[i]; break;
      case StDType::U8: out[i] = p[i]; break;
      case StDType::BOOL: out[i] = p[i] != 0; break;
      default:
        throw std::runtime_error(std::string("[safetensors] to_i64: tensor '") + t.name +
                                 "' is " + st_dtype_name(t.dtype) +
                                 ", not an integer dtype (use to_f32)");
    }
  }
  return out;
}

namespace {
template <class T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

std::vector<uint8_t> alloc_bytes(const std::string& name, const std::vector<int64_t>& shape,
                                 StDType dtype, const char* fn) {
  const auto nbytes = checked_nbytes(shape, dtype);
  if (!nbytes)
    throw std::runtime_error(std::string("[safetensors] ") + fn + ": tensor '" + name +
                             "': shape " + st_shape_str(shape) +
                             " has a negative dimension or too many elements");
  return std::vector<uint8_t>(*nbytes);
}
}  // namespace

StTensor from_f32(std::string name, std::vector<int64_t> shape, const float* data, StDType dtype) {
  if (dtype != StDType::F32 && dtype != StDType::F64 && dtype != StDType::F16 &&
      dtype != StDType::BF16)
    throw std::runtime_error("[safetensors] from_f32: tensor '" + name + "': cannot store as " +
                             st_dtype_name(dtype) + " (use F32, F64, F16 or BF16)");
  StTensor t;
  t.bytes = alloc_bytes(name, shape, dtype, "from_f32");
  const size_t n = t.bytes.size() / st_dtype_size(dtype);
  uint8_t* p = t.bytes.data();
  for (size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case StDType::F32: store<float>(p + 4 * i, data[i]); break;
      case StDType::F64: store<double>(p + 8 * i, data[i]); break;
      case StDType::F16: store<uint16_t>(p + 2 * i, f32_to_f16(data[i])); break;
      case StDType::BF16: store<uint16_t>(p + 2 * i, f32_to_bf16(data[i])); break;
      default: break;  // excluded above
    }
  }
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  return t;
}

StTensor from_i64(std::string name, std::vector<int64_t> shape, const int64_t* data,
                  StDType dtype) {
  int64_t lo = 0, hi = 0;
  switch (dtype) {
    case StDType::I64: lo = INT64_MIN; hi = INT64_MAX; break;
    case StDType::I32: lo = INT32_MIN; hi = INT32_MAX; break;
    case StDType::I16: lo = INT16_MIN; hi = INT16_MAX; break;
    case StDType::I8: lo = INT8_MIN; hi = INT8_MAX; break;
    case StDType::U8: lo = 0; hi = UINT8_MAX; break;
    case StDType::BOOL: lo = 0; hi = 1; break;
    default:
      throw std::runtime_error("[safetensors] from_i64: tensor '" + name + "': cannot store as " +
                               std::string(st_dtype_name(dtype)) +
                               " (use I64, I32, I16, I8, U8 or BOOL)");
  }
  StTensor t;
  t.bytes = alloc_bytes(name, shape, dtype, "from_i64");
  const size_t size = st_dtype_size(dtype), n = t.bytes.size() / size;
  uint8_t* p = t.bytes.data();
  for (size_t i = 0; i < n; ++i) {
    const int64_t v = data[i];
    if (v < lo || v > hi)
      throw std::runtime_error("[safetensors] from_i64: tensor '" + name + "': value " +
                               std::to_string(v) + " at index " + std::to_string(i) +
                               " does not fit in " + st_dtype_name(dtype));
    switch (size) {
      case 8: store<int64_t>(p + 8 * i, v); break;
      case 4: store<int32_t>(p + 4 * i, (int32_t)v); break;
      case 2: store<int16_t>(p + 2 * i, (int16_t)v); break;
      default: p[i] = (uint8_t)v; break;
    }
  }
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  return t;
}

}  // namespace sg
