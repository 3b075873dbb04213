#include "engine/core/tensor.h"

#include <sstream>

#include "engine/autograd/node.h"
#include "engine/core/random.h"
#include "engine/cpu/copy.h"

namespace pneuma {

namespace {
// strides must be dense (numel slots): the storage holds exactly numel elements.
std::shared_ptr<TensorImpl> new_impl(const Shape& shape, DType dtype, Device device, bool zero_fill,
                                     Strides strides = {}) {
  for (int64_t s : shape) PNEUMA_CHECK(s >= 0, "tensor: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<size_t>(numel_of(shape)) * dtype_size(dtype), device, zero_fill);
  impl->shape = shape;
  impl->strides = strides.empty() && !shape.empty() ? contiguous_strides(shape) : std::move(strides);
  impl->dtype = dtype;
  return impl;
}

Tensor cpu_filled(const Shape& shape, DType dtype, const auto& value_at) {
  Tensor t(new_impl(shape, dtype, Device::cpu(), false));
  const int64_t n = t.numel();
  dispatch_all(dtype, "tensor", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(value_at(i));
  });
  return t;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor(new_impl(shape, dtype, device, false));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemoryFormat format) {
  return Tensor(new_impl(shape, dtype, device, false, strides_for(shape, format, "empty")));
}

Tensor Tensor::empty_strided(const Shape& shape, const Strides& strides, DType dtype, Device device) {
  PNEUMA_CHECK(strides.size() == shape.size() && pneuma::is_non_overlapping_and_dense(shape, strides),
               "empty_strided: strides ", shape_str(strides), " do not lay out shape ", shape_str(shape),
               " densely without overlap");
  return Tensor(new_impl(shape, dtype, device, false, strides));
}

Tensor Tensor::empty_like(const Tensor& like) { return empty_like(like, like.dtype()); }

Tensor Tensor::empty_like(const Tensor& like, DType dtype) {
  if (like.is_non_overlapping_and_dense()) return empty_strided(like.shape(), like.strides(), dtype, like.device());
  return empty(like.shape(), dtype, like.device(), like.suggest_memory_format());
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return Tensor(new_impl(shape, dtype, device, true));
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = cpu_filled(shape, dtype, [&](int64_t) { return value; });
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype,
                           Device device) {
  PNEUMA_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_vector: ",
               values.size(), " values for shape ", shape_str(shape));
  Tensor t = cpu_filled(shape, dtype, [&](int64_t i) { return values[i]; });
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::from_indices(const std::vector<int64_t>& values, const Shape& shape) {
  PNEUMA_CHECK(static_cast<int64_t>(values.size()) == numel_of(shape), "from_indices: ",
               values.size(), " values for shape ", shape_str(shape));
  return cpu_filled(shape, DType::Int64, [&](int64_t i) { return values[i]; });
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  return cpu_filled({n}, dtype, [](int64_t i) { return static_cast<double>(i); });
}

Tensor Tensor::randn(const Shape& shape, uint64_t seed, DType dtype) {
  return cpu_filled(shape, dtype, [&](int64_t i) { return random::normal(seed, i); });
}

Tensor Tensor::rand(const Shape& shape, uint64_t seed, DType dtype) {
  return cpu_filled(shape, dtype, [&](int64_t i) { return random::uniform(seed, i); });
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

bool Tensor::is_contiguous(MemoryFormat format) const {
  PNEUMA_CHECK(format != MemoryFormat::Preserve, "is_contiguous: preserve_format is not a layout to test");
  return format == MemoryFormat::Contiguous ? is_contiguous() : is_channels_last_contiguous(shape(), strides());
}

bool Tensor::is_non_overlapping_and_dense() const {
  return pneuma::is_non_overlapping_and_dense(shape(), strides());
}

MemoryFormat Tensor::suggest_memory_format() const {
  return has_channels_last_strides(shape(), strides()) ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream out;
  out << dtype_name(dtype()) << shape_str(shape()) << " on " << device().str();
  return out.str();
}

bool Tensor::requires_grad() const { return impl().requires_grad || impl().grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool value) {
  PNEUMA_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad (",
               str(), " was produced by ", impl().grad_fn->name(), ")");
  PNEUMA_CHECK(!value || is_floating(dtype()), "set_requires_grad: only float tensors can require "
               "gradients, got ", dtype_name(dtype()));
  impl().requires_grad = value;
  return *this;
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  autograd::backward(*this, grad_output, retain_graph);
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

double Tensor::item() const {
  PNEUMA_CHECK(numel() == 1, "item: tensor ", str(), " has ", numel(), " elements, expected 1");
  return to_vector()[0];
}

std::vector<double> Tensor::to_vector() const {
  const Tensor dense = to(Device::cpu()).to(DType::Float64).contiguous();
  const double* p = dense.data<double>();
  return std::vector<double>(p, p + dense.numel());
}

std::vector<int64_t> Tensor::to_indices() const {
  const Tensor dense = to(Device::cpu()).to(DType::Int64).contiguous();
  const int64_t* p = dense.data<int64_t>();
  return std::vector<int64_t>(p, p + dense.numel());
}

Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

}  // namespace pneuma
