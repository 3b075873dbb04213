// Tensor's view methods (shared storage, new geometry) and their backward nodes,
// plus the copies: contiguous, clone and dtype/device conversion.
#include <algorithm>
#include <numeric>
#include <optional>

#include "engine/autograd/node.h"
#include "engine/cpu/copy.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/elementwise/elementwise_cuda.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/device_memory.h"
#endif

namespace pneuma {

namespace {

// dst = src (converted to dst's dtype) on the device both live on.
void copy_on_device(const Tensor& src, const Tensor& dst) {
  if (src.device().is_cuda()) cuda::copy_strided(src, dst);
  else cpu::copy_strided(src, dst);
}

class ReshapeBackward final : public autograd::Node {
 public:
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> apply(const Tensor& g) override { return {g.reshape(input_shapes[0])}; }
};

class PermuteBackward final : public autograd::Node {
 public:
  explicit PermuteBackward(std::vector<int64_t> inverse) : inverse_(std::move(inverse)) {}
  const char* name() const override { return "permute"; }
  std::vector<Tensor> apply(const Tensor& g) override { return {g.permute(inverse_)}; }

 private:
  std::vector<int64_t> inverse_;
};

class ExpandBackward final : public autograd::Node {
 public:
  const char* name() const override { return "expand"; }
  std::vector<Tensor> apply(const Tensor& g) override { return {sum_to(g, input_shapes[0])}; }
};

class IdentityBackward final : public autograd::Node {
 public:
  explicit IdentityBackward(const char* name) : name_(name) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> apply(const Tensor& g) override { return {g}; }

 private:
  const char* name_;
};

// Backward of slice/select: the gradient lands in the selected region of zeros.
class SliceBackward final : public autograd::Node {
 public:
  SliceBackward(int64_t dim, int64_t start, int64_t end, int64_t step, bool select)
      : dim_(dim), start_(start), end_(end), step_(step), select_(select) {}
  const char* name() const override { return select_ ? "select" : "slice"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor dx = Tensor::zeros(input_shapes[0], g.dtype(), g.device());
    Tensor region = select_ ? dx.select(dim_, start_) : dx.slice(dim_, start_, end_, step_);
    copy_on_device(g, region);
    return {dx};
  }

 private:
  int64_t dim_, start_, end_, step_;
  bool select_;
};

class ConvertBackward final : public autograd::Node {
 public:
  ConvertBackward(DType dtype, Device device) : dtype_(dtype), device_(device) {}
  const char* name() const override { return "to"; }
  std::vector<Tensor> apply(const Tensor& g) override { return {g.to(dtype_).to(device_)}; }

 private:
  DType dtype_;
  Device device_;
};

Tensor with_history(const Tensor& input, Tensor output, std::shared_ptr<autograd::Node> node) {
  if (autograd::needs_grad({&input})) autograd::record(node, {input}, output);
  return output;
}

// Strides for viewing a tensor as `shape` without copying, or empty when impossible
// (PyTorch's computeStride: each run of merged dims must be contiguous in itself).
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& shape) {
  if (old_shape.empty() || numel_of(old_shape) == 0) return contiguous_strides(shape);
  Strides out(shape.size());
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

Shape infer_shape(const Shape& requested, int64_t numel, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      PNEUMA_CHECK(infer_at < 0, op, ": only one dimension can be -1 in ", shape_str(requested));
      infer_at = static_cast<int64_t>(i);
    } else {
      PNEUMA_CHECK(shape[i] >= 0, op, ": invalid size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    PNEUMA_CHECK(known != 0 && numel % known == 0, op, ": shape ", shape_str(requested),
                 " is invalid for input of size ", numel);
    shape[infer_at] = numel / known;
  }
  PNEUMA_CHECK(numel_of(shape) == numel, op, ": shape ", shape_str(requested),
               " is invalid for input of size ", numel);
  return shape;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "view");
  const auto strides_for_view = view_strides(this->shape(), strides(), shape);
  PNEUMA_CHECK(strides_for_view.has_value(), "view: shape ", shape_str(shape), " is not compatible with ",
               str(), " strides ", shape_str(strides()), "; use reshape");
  return with_history(*this, make_view(*this, shape, *strides_for_view, offset()),
                      std::make_shared<ReshapeBackward>());
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "reshape");
  if (view_strides(this->shape(), strides(), shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  PNEUMA_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(),
               " dims given for ", str());
  Shape shape(dims.size());
  Strides new_strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim(), "permute");
    PNEUMA_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated");
    inverse[d] = static_cast<int64_t>(i);
    shape[i] = this->shape()[d];
    new_strides[i] = strides()[d];
  }
  return with_history(*this, make_view(*this, shape, new_strides, offset()),
                      std::make_shared<PermuteBackward>(inverse));
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  std::vector<int64_t> order(dim());
  std::iota(order.begin(), order.end(), 0);
  if (dim() > 0) std::swap(order[wrap_dim(dim0, dim(), "transpose")], order[wrap_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  PNEUMA_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = shape()[d];
  auto clip = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clip(start);
  end = std::max(start, clip(end));
  Shape new_shape = shape();
  new_shape[d] = (end - start + step - 1) / step;
  Strides new_strides = strides();
  new_strides[d] *= step;
  return with_history(*this, make_view(*this, new_shape, new_strides, offset() + start * strides()[d]),
                      std::make_shared<SliceBackward>(d, start, end, step, false));
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = shape()[d];
  PNEUMA_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", d,
               " of size ", n);
  if (index < 0) index += n;
  Shape new_shape = shape();
  Strides new_strides = strides();
  const int64_t new_offset = offset() + index * strides()[d];
  new_shape.erase(new_shape.begin() + d);
  new_strides.erase(new_strides.begin() + d);
  return with_history(*this, make_view(*this, new_shape, new_strides, new_offset),
                      std::make_shared<SliceBackward>(d, index, index + 1, 1, true));
}

Tensor Tensor::expand(const Shape& requested) const {
  PNEUMA_CHECK(requested.size() >= shape().size(), "expand: cannot expand ", str(), " to ",
               shape_str(requested));
  const size_t lead = requested.size() - shape().size();
  Shape new_shape(requested.size());
  Strides new_strides(requested.size(), 0);
  for (size_t i = 0; i < requested.size(); ++i) {
    if (i < lead) {
      PNEUMA_CHECK(requested[i] >= 0, "expand: invalid size in ", shape_str(requested));
      new_shape[i] = requested[i];
      continue;
    }
    const int64_t have = shape()[i - lead];
    const int64_t want = requested[i] == -1 ? have : requested[i];
    PNEUMA_CHECK(have == want || have == 1, "expand: cannot expand ", str(), " to ",
                 shape_str(requested), " (dim ", i, ")");
    new_shape[i] = want;
    new_strides[i] = have == want ? strides()[i - lead] : 0;
  }
  if (new_shape == shape()) return *this;
  return with_history(*this, make_view(*this, new_shape, new_strides, offset()),
                      std::make_shared<ExpandBackward>());
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || shape()[d] != 1) return *this;
  Shape new_shape = shape();
  new_shape.erase(new_shape.begin() + d);
  return view(new_shape);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape new_shape = shape();
  new_shape.insert(new_shape.begin() + d, 1);
  Strides new_strides = strides();
  const int64_t stride = d < dim() ? strides()[d] * shape()[d] : 1;
  new_strides.insert(new_strides.begin() + d, stride);
  return with_history(*this, make_view(*this, new_shape, new_strides, offset()),
                      std::make_shared<ReshapeBackward>());
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  PNEUMA_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape new_shape(shape().begin(), shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= shape()[d];
  new_shape.push_back(merged);
  new_shape.insert(new_shape.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(new_shape);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::contiguous(MemoryFormat format) const {
  PNEUMA_CHECK(format != MemoryFormat::Preserve, "contiguous: preserve_format is not a layout to make");
  return is_contiguous(format) ? *this : clone(format);
}

Tensor Tensor::clone() const { return clone(MemoryFormat::Contiguous); }

Tensor Tensor::clone(MemoryFormat format) const {
  Tensor out = format == MemoryFormat::Preserve ? Tensor::empty_like(*this)
                                                : Tensor::empty(shape(), dtype(), device(), format);
  copy_on_device(*this, out);
  return with_history(*this, out, std::make_shared<IdentityBackward>("clone"));
}

Tensor Tensor::laid_out_like(const Tensor& like) const {
  PNEUMA_CHECK(shape() == like.shape(), "laid_out_like: ", str(), " and ", like.str(), " differ in shape");
  if (same_element_offsets(shape(), strides(), like.strides()) && is_non_overlapping_and_dense()) return *this;
  Tensor out = Tensor::empty_strided(shape(), like.strides(), dtype(), device());
  copy_on_device(*this, out);
  return out;
}

// Conversions keep a dense layout (a channels-last tensor stays channels-last), as torch's to().
Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = Tensor::empty_like(*this, target);
  copy_on_device(*this, out);
  if (is_floating(target) && is_floating(dtype()))
    return with_history(*this, out, std::make_shared<ConvertBackward>(dtype(), device()));
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
#ifdef PNEUMA_WITH_CUDA
  const Tensor src = is_non_overlapping_and_dense() ? *this : contiguous();
  Tensor out = Tensor::empty_strided(shape(), src.strides(), dtype(), target);
  cuda::copy_bytes(out.raw_data(), target, src.raw_data(), src.device(), src.numel() * dtype_size(dtype()));
  return with_history(*this, out, std::make_shared<ConvertBackward>(dtype(), device()));
#else
  PNEUMA_FAIL("to(", target.str(), "): this build of Pneuma has no CUDA backend");
#endif
}

}  // namespace pneuma
