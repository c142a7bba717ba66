// autograd/tensor.h — the Tensor: a handle to shared storage plus shape/strides/offset, dtype,
// device, and the autograd fields (requires_grad, grad, the Node that produced it, a name).
//
// Handle semantics: copying a Tensor copies a shared_ptr, both copies see the same numbers and the
// same .grad. Views (reshape, permute, slice, expand) are new TensorImpls over the same Storage with
// other strides — stride arithmetic, no kernel runs.
//
// What this is not: an op library. Math lives in ops/ (ops/ops.h); this file only knows how to
// allocate, describe, read and write numbers, and how to start backward().
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "autograd/device.h"
#include "autograd/rng.h"

namespace sg {

// f32 computes; f64 is for gradchecks and references; i32/i64 hold indices. The low-precision
// dtypes are STORAGE only (ops/fp8.h has their bits): bf16 / f16 (2 bytes) and the FP8 formats
// f8e4m3 (E4M3 "fn", max 448, saturating) / f8e5m2 (1 byte each, the raw 8-bit code). An FP8 tensor
// is its codes; the scale tensor that dequantizes them travels beside it (ops/fp8_tensor.h). Reading
// one element (at, to_f64_vector) decodes it exactly; writing one (set_at, full) rounds to nearest
// even. Compute ops refuse them by name: dequantize (ops/fp8_tensor.h) or convert first.
enum class DType : uint8_t { f32, f64, i32, i64, bf16, f16, f8e4m3, f8e5m2 };
// Device (CPU, CUDA, Metal) and the memory behind each: autograd/device.h.

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);
inline bool is_floating(DType dt) { return dt == DType::f32 || dt == DType::f64; }  // compute dtypes
inline bool is_fp8(DType dt) { return dt == DType::f8e4m3 || dt == DType::f8e5m2; }
inline bool is_low_precision(DType dt) { return is_fp8(dt) || dt == DType::bf16 || dt == DType::f16; }

// What a tensor is to the module that registered it (models/module.h sets it through add_parameter /
// add_buffer; the optimizer's default weight-decay rule reads it: decay iff weight). A tensor nobody
// registered (an activation, a view, a copy) is `none`.
enum class ParamKind : uint8_t {
  none,       // not registered by a module
  weight,     // a Linear (or gate) matrix: decayed by AdamW's default rule
  embedding,  // an Embedding table
  norm,       // an RMSNorm / LayerNorm scale
  bias,       // an additive bias (LayerNorm's)
  buffer,     // module state that is not trained (Module::buffers(): the MoE gate's e_score_correction_bias)
};
const char* param_kind_name(ParamKind k);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);                 // "(2, 3, 4)"
// Overflow-checked (autograd/checked.h): a shape whose element count, strides or byte size does not fit in
// int64 / size_t throws std::overflow_error naming the shape, instead of wrapping to a small size.
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
size_t shape_nbytes(const Shape& s, DType dtype);   // numel · dtype_size; negative dims are an error

// A block of memory on one device, from the caching allocator's pool for that device (autograd/allocator.h):
// host memory for the CPU, device memory for CUDA, host memory again for CUDA under the emulation
// (autograd/device.h). Goes back to the pool it came from when the last view dies.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::CPU;
  MemoryPool pool = MemoryPool::cpu;   // memory_pool_for(device) when it was allocated
  Storage(size_t nbytes, Device device);   // Metal: "[metal] no Metal backend in this build"
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Node;
class Tensor;
// A gradient hook sees (and may replace) the gradient flowing into a tensor during backward().
using GradHook = std::function<void(Tensor& grad)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;        // in elements
  int64_t offset = 0;   // in elements
  DType dtype = DType::f32;
  Device device = Device::CPU;
  bool requires_grad = false;
  ParamKind param_kind = ParamKind::none;  // set when a module registers it (models/module.h)
  std::shared_ptr<TensorImpl> grad;   // accumulated gradient of a leaf (or retained non-leaf)
  std::shared_ptr<Node> grad_fn;      // the op that produced this tensor (null for leaves)
  std::string name;
  std::vector<GradHook> hooks;        // for leaves; non-leaf hooks live on grad_fn
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -------------------------------------------------------------------------
  // empty/zeros/ones/full/scalar take a device (the values are written on the host and copied there);
  // the others make CPU tensors: move them with to().
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int32_t>& values, const Shape& shape);
  static Tensor randn(const Shape& shape, Rng& rng, double std = 1.0, DType dtype = DType::f32);
  static Tensor rand(const Shape& shape, Rng& rng, double lo = 0.0, double hi = 1.0, DType dtype = DType::f32);
  static Tensor randint(const Shape& shape, Rng& rng, int64_t lo, int64_t hi, DType dtype = DType::i64);
  static Tensor arange(int64_t n, DType dtype = DType::i64);

  // ---- description -----------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t dim() const { return (int64_t)impl_->shape.size(); }
  int64_t size(int64_t d) const;   // negative d counts from the end
  int64_t numel() const { return shape_numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->device; }
  bool is_contiguous() const;
  std::string describe() const;   // "x (2, 3) f32" — used in error messages

  // ---- numbers ---------------------------------------------------------------------------
  // Host code touches the numbers of CPU tensors only: data/raw_data/fp8_codes/set_at of a tensor on another
  // device throw naming it. READING works on any device: to_*_vector, item and at copy to the host first.
  template <class T> T* data() const;          // pointer to element [0,...,0]; checks the dtype and the CPU
  void* raw_data() const;                      // the same, untyped
  uint8_t* fp8_codes() const;                  // the codes of an f8e4m3 / f8e5m2 tensor; checks the dtype
  std::vector<float> to_f32_vector() const;    // any layout, row-major order
  std::vector<double> to_f64_vector() const;
  std::vector<int64_t> to_i64_vector() const;
  double item() const;                         // a one-element tensor's value
  double at(const std::vector<int64_t>& index) const;        // read one element (any dtype, strides)
  void set_at(const std::vector<int64_t>& index, double v);  // write one element (CPU only)
  Tensor clone_data() const;  // a contiguous copy on the same device with no autograd history (not recorded)
  // A contiguous copy on `device` (x itself when it is there already), with x's name and NO autograd history:
  // the differentiable move is sg::to_device (ops/device.h). Host <-> device copies; a strided view on a device
  // is gathered on the host.
  Tensor to(Device device) const;
  // For a backend's kernels (ops/kernels.h): element [0,...,0] in the memory of the tensor's device (device
  // memory for CUDA, host memory for the CPU and the CUDA emulation). Checks the dtype, and that the storage
  // comes from the pool the kernels of this device use now (an emulated tensor after the emulation was turned
  // off is refused by name).
  template <class T> T* device_data() const;
  void* raw_device_data() const;

  // ---- autograd --------------------------------------------------------------------------
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  void zero_grad() { impl_->grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor detach() const;  // same storage, no history, requires_grad false
  // Runs the one backward sweep (autograd/backward.cpp) from this tensor. A non-scalar root needs
  // an explicit `grad` of its shape.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  void on_grad(GradHook hook);   // called with this tensor's gradient during backward
  void retain_grad();            // keep .grad on a non-leaf

  const std::string& name() const { return impl_->name; }
  Tensor& set_name(const std::string& name);
  ParamKind param_kind() const { return impl_->param_kind; }
  Tensor& set_param_kind(ParamKind k) {
    impl_->param_kind = k;
    return *this;
  }

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };

void throw_dtype_mismatch(const Tensor& t, DType wanted);

template <class T> T* Tensor::data() const {
  if (impl_->dtype != dtype_of<T>::value) throw_dtype_mismatch(*this, dtype_of<T>::value);
  return static_cast<T*>(raw_data());
}
template <class T> T* Tensor::device_data() const {
  if (impl_->dtype != dtype_of<T>::value) throw_dtype_mismatch(*this, dtype_of<T>::value);
  return static_cast<T*>(raw_device_data());
}

// Builds a view: same storage, new shape/strides/offset. Used by ops/ view ops only.
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

}  // namespace sg
