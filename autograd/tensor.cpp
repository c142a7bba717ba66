// autograd/tensor.cpp — Tensor storage, factories and element access. See tensor.h.
#include "autograd/tensor.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "autograd/allocator.h"
#include "autograd/checked.h"
#include "autograd/node.h"
#include "ops/fp8.h"

namespace sg {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::f8e4m3: return 1;
    case DType::f8e5m2: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f8e4m3: return "f8e4m3";
    case DType::f8e5m2: return "f8e5m2";
  }
  return "?";
}

const char* param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::none: return "none";
    case ParamKind::weight: return "weight";
    case ParamKind::embedding: return "embedding";
    case ParamKind::norm: return "norm";
    case ParamKind::bias: return "bias";
    case ParamKind::buffer: return "buffer";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + ")";
}

// Checked: a product that wraps around int64 would make a tiny buffer for a huge shape. A shape with a 0 in it
// has 0 elements even when the other dimensions' product overflows. (The builtin, not checked_mul: numel() is
// called often and the message is built only when it fails.)
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : s) overflow |= __builtin_mul_overflow(n, d, &n);
  if (overflow) {
    for (int64_t d : s)
      if (d == 0) return 0;
    throw std::overflow_error("[numel] shape " + shape_str(s) + ": the number of elements overflows int64");
  }
  return n;
}

// Row-major strides; each is a product of trailing dims, checked like shape_numel (the product of ALL dims is
// never needed, so a shape like (0, 2^40, 2^40) whose leading stride overflows is still an error).
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)s.size() - 1; i >= 0; i--) {
    st[i] = acc;
    if (i > 0 && __builtin_mul_overflow(acc, s[i], &acc))
      throw std::overflow_error("[strides] shape " + shape_str(s) + ": the stride of dim " + std::to_string(i - 1) +
                                " overflows int64");
  }
  return st;
}

size_t shape_nbytes(const Shape& s, DType dtype) {
  const int64_t n = shape_numel(s);
  if (n < 0) throw std::runtime_error("[nbytes] negative dimension in shape " + shape_str(s));
  return checked_mul_size((size_t)n, dtype_size(dtype),
                          std::string("[nbytes] shape ") + shape_str(s) + " of " + dtype_name(dtype));
}

Storage::Storage(size_t nbytes_, Device device_) : nbytes(nbytes_), device(device_), pool(memory_pool_for(device_)) {
  data = pool_allocate(pool, nbytes);
}

Storage::~Storage() { pool_free(pool, data, nbytes); }

void throw_dtype_mismatch(const Tensor& t, DType wanted) {
  throw std::runtime_error("[data] " + t.describe() + " read as " + dtype_name(wanted));
}

// ---- factories ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) throw std::runtime_error("[empty] negative dimension in shape " + shape_str(shape));
  const size_t nbytes = std::max(shape_nbytes(shape, dtype), dtype_size(dtype));  // >= 1 element: data() is valid
  Shape strides = contiguous_strides(shape);
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = std::make_shared<Storage>(nbytes, device);
  } catch (const std::bad_alloc&) {  // say which tensor: std::bad_alloc's own message is "std::bad_alloc"
    throw std::runtime_error("[empty] cannot allocate " + std::to_string(nbytes) + " bytes for shape " + shape_str(shape) +
                             " " + dtype_name(dtype) + " on " + device_name(device));
  }
  impl->shape = shape;
  impl->strides = std::move(strides);
  impl->dtype = dtype;
  impl->device = device;
  return Tensor(impl);
}

namespace {
// Writes `v` as `dt` at element pointer p.
inline void store(void* p, DType dt, double v) {
  switch (dt) {
    case DType::f32: *static_cast<float*>(p) = (float)v; break;
    case DType::f64: *static_cast<double*>(p) = v; break;
    case DType::i32: *static_cast<int32_t*>(p) = (int32_t)v; break;
    case DType::i64: *static_cast<int64_t*>(p) = (int64_t)v; break;
    case DType::bf16: *static_cast<uint16_t*>(p) = lowp::f32_to_bf16((float)v); break;
    case DType::f16: *static_cast<uint16_t*>(p) = lowp::f32_to_f16((float)v); break;
    case DType::f8e4m3: *static_cast<uint8_t*>(p) = lowp::f32_to_e4m3((float)v); break;
    case DType::f8e5m2: *static_cast<uint8_t*>(p) = lowp::f32_to_e5m2((float)v); break;
  }
}
inline double load(const void* p, DType dt) {
  switch (dt) {
    case DType::f32: return *static_cast<const float*>(p);
    case DType::f64: return *static_cast<const double*>(p);
    case DType::i32: return *static_cast<const int32_t*>(p);
    case DType::i64: return (double)*static_cast<const int64_t*>(p);
    case DType::bf16: return lowp::bf16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::f16: return lowp::f16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::f8e4m3: return lowp::e4m3_to_f32(*static_cast<const uint8_t*>(p));
    case DType::f8e5m2: return lowp::e5m2_to_f32(*static_cast<const uint8_t*>(p));
  }
  return 0;
}
// Calls fn(element_offset) for every element of a strided layout, in row-major order.
template <class F>
void for_each_offset(const Shape& shape, const Shape& strides, int64_t offset, F fn) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = offset;
  for (int64_t i = 0; i < n; i++) {
    fn(off);
    for (int64_t d = (int64_t)nd - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}
}  // namespace

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.raw_data());
  size_t es = dtype_size(dtype);
  for (int64_t i = 0; i < t.numel(); i++) store(p + i * es, dtype, value);
  return t.to(device);
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw_data(), 0, t.numel() * dtype_size(dtype));
  return t.to(device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

template <class T>
static Tensor from_values(const std::vector<T>& values, const Shape& shape) {
  if ((int64_t)values.size() != shape_numel(shape))
    throw std::runtime_error("[from_vector] " + std::to_string(values.size()) + " values do not fill shape " +
                             shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s) { return from_values(v, s); }
Tensor Tensor::from_vector(const std::vector<int32_t>& v, const Shape& s) { return from_values(v, s); }

Tensor Tensor::randn(const Shape& shape, Rng& rng, double std, DType dtype) {
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); i++) store(p + i * dtype_size(dtype), dtype, rng.normal() * std);
  return t;
}
Tensor Tensor::rand(const Shape& shape, Rng& rng, double lo, double hi, DType dtype) {
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); i++) store(p + i * dtype_size(dtype), dtype, rng.uniform(lo, hi));
  return t;
}
Tensor Tensor::randint(const Shape& shape, Rng& rng, int64_t lo, int64_t hi, DType dtype) {
  if (hi <= lo) throw std::runtime_error("[randint] empty range [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.raw_data());
  for (int64_t i = 0; i < t.numel(); i++)
    store(p + i * dtype_size(dtype), dtype, (double)(lo + (int64_t)rng.randint((uint64_t)(hi - lo))));
  return t;
}
Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  char* p = static_cast<char*>(t.raw_data());
  for (int64_t i = 0; i < n; i++) store(p + i * dtype_size(dtype), dtype, (double)i);
  return t;
}

// ---- description ----------------------------------------------------------------------------

int64_t Tensor::size(int64_t d) const {
  int64_t nd = dim();
  int64_t dd = d < 0 ? d + nd : d;
  if (dd < 0 || dd >= nd)
    throw std::runtime_error("[size] dimension " + std::to_string(d) + " out of range for " + describe());
  return impl_->shape[dd];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; i--) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!impl_) return "<undefined tensor>";
  std::string s = impl_->name.empty() ? "tensor" : impl_->name;
  s += " " + shape_str(impl_->shape) + " " + dtype_name(impl_->dtype);
  if (impl_->device != Device::CPU) s += std::string(" on ") + device_name(impl_->device);
  return s;
}

// ---- numbers --------------------------------------------------------------------------------

// Element [0,...,0]'s bytes, in whatever memory the storage is (unchecked: the callers below check).
static char* element_bytes(const Tensor& t) {
  return static_cast<char*>(t.impl()->storage->data) + t.offset() * (int64_t)dtype_size(t.dtype());
}

void* Tensor::raw_data() const {
  if (impl_->device != Device::CPU)
    throw std::runtime_error("[data] " + describe() + " is not in host memory: host code reads it with to(Device::CPU)" +
                             " (kernels take device_data())");
  return element_bytes(*this);
}
void* Tensor::raw_device_data() const {
  const MemoryPool now = memory_pool_for(impl_->device);
  if (impl_->storage->pool != now)
    throw std::runtime_error("[device_data] " + describe() + " lives in " + memory_pool_name(impl_->storage->pool) +
                             " memory, but " + device_name(impl_->device) + " kernels now run on " + memory_pool_name(now) +
                             " memory (was the CUDA emulation switched since it was made?)");
  return element_bytes(*this);
}
uint8_t* Tensor::fp8_codes() const {
  if (!is_fp8(dtype()))
    throw std::runtime_error("[fp8_codes] " + describe() + " is not an FP8 tensor (f8e4m3 / f8e5m2)");
  return static_cast<uint8_t*>(raw_data());
}

// The elements of a strided view on a device, gathered into a contiguous CPU tensor: the bytes the view spans are
// copied to the host in one piece, then walked with the view's strides there.
static Tensor gather_to_host(const Tensor& x) {
  if (x.numel() == 0) return Tensor::empty(x.shape(), x.dtype());
  int64_t lo = x.offset(), hi = x.offset();
  for (int64_t d = 0; d < x.dim(); d++) {
    const int64_t extent = (x.shape()[d] - 1) * x.strides()[d];
    (extent < 0 ? lo : hi) += extent;
  }
  const size_t es = dtype_size(x.dtype());
  Tensor span = Tensor::empty({hi - lo + 1}, x.dtype());
  copy_memory(MemoryPool::cpu, span.raw_data(), x.impl()->storage->pool,
              static_cast<const char*>(x.impl()->storage->data) + lo * (int64_t)es, (size_t)(hi - lo + 1) * es);
  return make_view(span, x.shape(), x.strides(), x.offset() - lo).clone_data();
}

Tensor Tensor::to(Device device) const {
  if (impl_->device == device) return *this;
  // A contiguous source on the host or on this device: a strided CPU view is copied into one piece first, a
  // strided device view gathered to the host (then it may already be where it goes).
  Tensor src = is_contiguous() ? *this : impl_->device == Device::CPU ? clone_data() : gather_to_host(*this);
  Tensor out = src.device() == device ? src : empty(shape(), dtype(), device);
  if (!out.same(src))
    copy_memory(out.impl()->storage->pool, element_bytes(out), src.impl()->storage->pool, element_bytes(src),
                (size_t)numel() * dtype_size(dtype()));
  out.impl()->name = impl_->name;
  return out;
}

std::vector<double> Tensor::to_f64_vector() const {
  if (device() != Device::CPU) return to(Device::CPU).to_f64_vector();
  std::vector<double> out;
  out.reserve(numel());
  const char* base = static_cast<const char*>(impl_->storage->data);
  size_t es = dtype_size(dtype());
  for_each_offset(shape(), strides(), offset(), [&](int64_t off) { out.push_back(load(base + off * es, dtype())); });
  return out;
}
std::vector<float> Tensor::to_f32_vector() const {
  std::vector<double> d = to_f64_vector();
  return std::vector<float>(d.begin(), d.end());
}
std::vector<int64_t> Tensor::to_i64_vector() const {
  if (device() != Device::CPU) return to(Device::CPU).to_i64_vector();
  std::vector<int64_t> out;
  out.reserve(numel());
  const char* base = static_cast<const char*>(impl_->storage->data);
  size_t es = dtype_size(dtype());
  for_each_offset(shape(), strides(), offset(), [&](int64_t off) {
    if (dtype() == DType::i64) out.push_back(*reinterpret_cast<const int64_t*>(base + off * es));
    else out.push_back((int64_t)load(base + off * es, dtype()));
  });
  return out;
}

// The element at `off` (in elements from the storage's start), copied to the host first when it is elsewhere.
static double load_element(const Tensor& t, int64_t off) {
  const size_t es = dtype_size(t.dtype());
  const char* p = static_cast<const char*>(t.impl()->storage->data) + off * (int64_t)es;
  if (t.device() == Device::CPU) return load(p, t.dtype());
  alignas(8) char host[8];
  copy_memory(MemoryPool::cpu, host, t.impl()->storage->pool, p, es);
  return load(host, t.dtype());
}

double Tensor::item() const {
  if (numel() != 1) throw std::runtime_error("[item] " + describe() + " has " + std::to_string(numel()) + " elements, not 1");
  return load_element(*this, offset());
}

static int64_t element_offset(const Tensor& t, const std::vector<int64_t>& index) {
  if ((int64_t)index.size() != t.dim())
    throw std::runtime_error("[at] index of " + std::to_string(index.size()) + " coordinates for " + t.describe());
  int64_t off = t.offset();
  for (size_t d = 0; d < index.size(); d++) {
    int64_t i = index[d] < 0 ? index[d] + t.shape()[d] : index[d];
    if (i < 0 || i >= t.shape()[d])
      throw std::runtime_error("[at] index " + std::to_string(index[d]) + " out of range for dim " + std::to_string(d) +
                               " of " + t.describe());
    off += i * t.strides()[d];
  }
  return off;
}
double Tensor::at(const std::vector<int64_t>& index) const { return load_element(*this, element_offset(*this, index)); }
void Tensor::set_at(const std::vector<int64_t>& index, double v) {
  if (device() != Device::CPU)
    throw std::runtime_error("[set_at] " + describe() + " is not in host memory: host code cannot write it" +
                             " (set the values on a CPU tensor, then copy it with to(Device::" +
                             (device() == Device::CUDA ? "CUDA" : "Metal") + "))");
  int64_t off = element_offset(*this, index);
  store(static_cast<char*>(impl_->storage->data) + off * dtype_size(dtype()), dtype(), v);
}

Tensor Tensor::clone_data() const {
  size_t es = dtype_size(dtype());
  if (device() != Device::CPU) {
    if (!is_contiguous()) return to(Device::CPU).to(device());  // no strided copy kernel on devices yet: via the host
    Tensor out = empty(shape(), dtype(), device());
    copy_memory(out.impl()->storage->pool, element_bytes(out), impl_->storage->pool, element_bytes(*this),
                (size_t)numel() * es);
    return out;
  }
  Tensor out = empty(shape(), dtype());
  char* dst = static_cast<char*>(out.raw_data());
  if (is_contiguous()) {
    std::memcpy(dst, raw_data(), numel() * es);
    return out;
  }
  const char* base = static_cast<const char*>(impl_->storage->data);
  int64_t i = 0;
  for_each_offset(shape(), strides(), offset(), [&](int64_t off) { std::memcpy(dst + (i++) * es, base + off * es, es); });
  return out;
}

// ---- autograd -------------------------------------------------------------------------------

Tensor& Tensor::requires_grad_(bool on) {
  if (on && !is_floating(dtype()))
    throw std::runtime_error("[requires_grad] " + describe() + " is not a floating-point tensor");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->offset = impl_->offset;
  impl->dtype = impl_->dtype;
  impl->device = impl_->device;
  impl->name = impl_->name;
  return Tensor(impl);
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const { sg::backward(*this, grad, retain_graph); }

void Tensor::on_grad(GradHook hook) {
  if (impl_->grad_fn) impl_->grad_fn->hooks.push_back(std::move(hook));
  else impl_->hooks.push_back(std::move(hook));
}

void Tensor::retain_grad() {
  if (impl_->grad_fn) impl_->grad_fn->retain_grad = true;
}

Tensor& Tensor::set_name(const std::string& name) {
  impl_->name = name;
  if (impl_->grad_fn) impl_->grad_fn->out_name = name;
  return *this;
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(impl);
}

}  // namespace sg
