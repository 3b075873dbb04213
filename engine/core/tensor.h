#pragma once
// Tensor: a handle (shared_ptr) to shape, strides, dtype, device, shared storage and
// autograd state. Copying a Tensor copies the handle, as in PyTorch.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/memory_format.h"
#include "engine/core/shape.h"
#include "engine/core/storage.h"

namespace pneuma {

namespace autograd {
class Node;
}

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;     // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;                  // leaves only; non-leaves have grad_fn
  std::shared_ptr<TensorImpl> grad;            // accumulated gradient of a leaf
  std::shared_ptr<autograd::Node> grad_fn;     // the op that produced this tensor
  std::shared_ptr<autograd::Node> grad_accumulator;  // created lazily for leaves
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  // Uninitialized, laid out in `format` (Contiguous or ChannelsLast), as torch.empty(memory_format=).
  static Tensor empty(const Shape& shape, DType dtype, Device device, MemoryFormat format);
  // Uninitialized with the given strides, which must be non-overlapping and dense.
  static Tensor empty_strided(const Shape& shape, const Strides& strides, DType dtype, Device device);
  // Uninitialized, of like's shape and device and like's layout where like is dense (else the
  // layout it suggests), as torch.empty_like; dtype defaults to like's.
  static Tensor empty_like(const Tensor& like);
  static Tensor empty_like(const Tensor& like, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::Float32) { return full({}, value, dtype); }
  // Values are converted to dtype; values.size() must equal numel(shape).
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor from_indices(const std::vector<int64_t>& values, const Shape& shape);
  static Tensor arange(int64_t n, DType dtype = DType::Float32);
  // Deterministic given the seed: normal(0,1) and uniform[0,1) values.
  static Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::Float32);
  static Tensor rand(const Shape& shape, uint64_t seed, DType dtype = DType::Float32);

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t dim) const;
  int64_t numel() const { return numel_of(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  // Contiguous in `format` (Contiguous or ChannelsLast), ignoring size-1 dims as torch does.
  bool is_contiguous(MemoryFormat format) const;
  // The elements fill numel consecutive slots in some dim order: flat loops may run over them.
  bool is_non_overlapping_and_dense() const;
  // ChannelsLast when the strides order a 4-d tensor as NHWC, else Contiguous (torch's rule).
  MemoryFormat suggest_memory_format() const;
  std::string str() const;  // "float32[2, 3] on cpu"

  // Typed pointer to the first element (storage base + offset); checks the dtype.
  template <class T>
  T* data() const {
    PNEUMA_CHECK(dtype_v<T> == dtype(), "data<", dtype_name(dtype_v<T>), ">: tensor is ",
                 dtype_name(dtype()));
    return static_cast<T*>(impl().storage->data()) + impl().offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl().storage->data()) + impl().offset * dtype_size(dtype());
  }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // ---- autograd
  bool requires_grad() const;  // leaf flag or produced by a recorded op
  Tensor& set_requires_grad(bool value);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Backpropagates from this tensor. Without grad_output the tensor must hold one element.
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  // Same storage, no history.
  Tensor detach() const;

  // ---- views (share storage; differentiable)
  Tensor view(const Shape& shape) const;     // requires compatible strides
  Tensor reshape(const Shape& shape) const;  // view when possible, else a copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  // self when already contiguous
  // Self when already contiguous in `format`, else a differentiable copy laid out so.
  Tensor contiguous(MemoryFormat format) const;
  Tensor clone() const;       // always a fresh contiguous copy, differentiable
  // A fresh differentiable copy in `format` (Preserve: empty_like's layout), as torch's clone.
  Tensor clone(MemoryFormat format) const;
  // The values in like's layout, for loops that walk both flat: self when the strides already
  // match, else a copy (not recorded). like must be non-overlapping and dense.
  Tensor laid_out_like(const Tensor& like) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // ---- values (CPU)
  double item() const;
  std::vector<double> to_vector() const;  // row-major logical order
  std::vector<int64_t> to_indices() const;

  TensorImpl& impl() const {
    PNEUMA_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Builds a tensor sharing `base`'s storage with a new geometry (no autograd).
Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset);

}  // namespace pneuma
