#include "engine/ops/index/index.h"

#include <algorithm>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/cpu/copy.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/index/index_cpu.h"
#include "engine/ops/index/index_cuda.h"

namespace pneuma {

namespace {

void check_index_tensor(const char* op, const Tensor& x, const Tensor& index) {
  ops::check_defined(op, index, "index");
  PNEUMA_CHECK(index.dtype() == DType::Int64, op, ": index must be an int64 tensor, got ", index.str());
  ops::check_same_device(op, x, index);
}

void check_bool(const char* op, const Tensor& t, const char* what) {
  ops::check_defined(op, t, what);
  PNEUMA_CHECK(t.dtype() == DType::Bool, op, ": ", what, " must be a bool tensor, got ", t.str());
}

// ---- cat

// 1-d tensors of size 0 are skipped by cat whatever their neighbours' shapes
// (PyTorch keeps this for tensors created as torch.tensor([])).
bool legacy_empty(const Tensor& t) { return t.dim() == 1 && t.numel() == 0; }

class CatBackward final : public autograd::Node {
 public:
  CatBackward(int64_t dim, std::vector<bool> skipped) : dim_(dim), skipped_(std::move(skipped)) {}
  const char* name() const override { return "cat"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    std::vector<Tensor> grads(input_shapes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < input_shapes.size(); ++i) {
      if (skipped_[i]) continue;
      const int64_t n = input_shapes[i][dim_];
      if (next[i]) grads[i] = g.slice(dim_, offset, offset + n);
      offset += n;
    }
    return grads;
  }

 private:
  int64_t dim_;
  std::vector<bool> skipped_;
};

// ---- index_select / gather / scatter_add

class IndexSelectBackward final : public autograd::Node {
 public:
  IndexSelectBackward(int64_t dim, Tensor index) : dim_(dim), index_(std::move(index)) {}
  const char* name() const override { return "index_select"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor dx = Tensor::zeros(input_shapes[0], g.dtype(), g.device());
    // index_select's forward checked the indices.
    if (dx.device().is_cuda()) cuda::index_add(dx, dim_, index_, g, /*check=*/false);
    else cpu::index_add(dx, dim_, index_, g);
    return {dx};
  }
  void release_saved() override { index_ = Tensor(); }

 private:
  int64_t dim_;
  Tensor index_;
};

// check: whether the indices still need checking on a CUDA device (the CPU loop always checks
// them as it reads them; gather's backward reuses indices its forward checked).
Tensor scatter_add_into(const Shape& shape, const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src,
                        const char* op, bool check) {
  Tensor out = base.defined() ? base.detach().clone() : Tensor::zeros(shape, src.dtype(), src.device());
  if (out.device().is_cuda()) cuda::scatter_add(out, dim, index, src, op, check);
  else cpu::scatter_add(out, dim, index, src, op);
  return out;
}

class GatherBackward final : public autograd::Node {
 public:
  GatherBackward(int64_t dim, Tensor index) : dim_(dim), index_(std::move(index)) {}
  const char* name() const override { return "gather"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    return {scatter_add_into(input_shapes[0], Tensor(), dim_, index_, g, "gather backward", /*check=*/false)};
  }
  void release_saved() override { index_ = Tensor(); }

 private:
  int64_t dim_;
  Tensor index_;
};

class ScatterAddBackward final : public autograd::Node {
 public:
  ScatterAddBackward(int64_t dim, Tensor index) : dim_(dim), index_(std::move(index)) {}
  const char* name() const override { return "scatter_add"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor gsrc;
    if (next[2]) {
      const Tensor picked = gather(g, dim_, index_);
      const Shape& src_shape = input_shapes[2];
      if (picked.shape() == src_shape) {
        gsrc = picked;
      } else {
        // Elements of src outside index's extent were never added: zero gradient.
        gsrc = Tensor::zeros(src_shape, g.dtype(), g.device());
        Tensor region = gsrc;
        for (int64_t d = 0; d < picked.dim(); ++d) region = region.slice(d, 0, picked.shape()[d]);
        if (region.device().is_cuda()) cuda::copy_strided(picked, region);
        else cpu::copy_strided(picked, region);
      }
    }
    return {next[0] ? g : Tensor(), Tensor(), gsrc};
  }
  void release_saved() override { index_ = Tensor(); }

 private:
  int64_t dim_;
  Tensor index_;
};

// Checks gather/scatter shapes: index has x's rank and fits inside `bound` apart
// from dim (PyTorch's rule), and inside `src` everywhere.
void check_scatter_shapes(const char* op, const Tensor& x, int64_t dim, const Tensor& index, const Tensor* src) {
  PNEUMA_CHECK(index.dim() == x.dim() || (x.dim() == 0 && index.dim() <= 1 && index.numel() == 1), op,
               ": index ", index.str(), " must have the same number of dimensions as input ", x.str());
  for (int64_t d = 0; d < index.dim() && x.dim() > 0; ++d) {
    PNEUMA_CHECK(d == dim || index.shape()[d] <= x.shape()[d], op, ": index ", index.str(),
                 " is larger than input ", x.str(), " at dim ", d, " (only dim ", dim, " may differ)");
    PNEUMA_CHECK(src == nullptr || index.shape()[d] <= src->shape()[d], op, ": index ", index.str(),
                 " is larger than src ", src->str(), " at dim ", d);
  }
}

// ---- where / masked_fill

class WhereBackward final : public autograd::Node {
 public:
  explicit WhereBackward(Tensor condition) : condition_(std::move(condition)) {}
  const char* name() const override { return "where"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    const Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
    Tensor ga, gb;
    if (next[1]) ga = sum_to(where(condition_, g, zero), input_shapes[1]);
    if (next[2]) gb = sum_to(where(condition_, zero, g), input_shapes[2]);
    return {Tensor(), ga, gb};
  }
  void release_saved() override { condition_ = Tensor(); }

 private:
  Tensor condition_;
};

class MaskedFillBackward final : public autograd::Node {
 public:
  explicit MaskedFillBackward(Tensor mask) : mask_(std::move(mask)) {}
  const char* name() const override { return "masked_fill"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    return {sum_to(masked_fill(g, mask_, 0.0), input_shapes[0]), Tensor()};
  }
  void release_saved() override { mask_ = Tensor(); }

 private:
  Tensor mask_;
};

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  profiler::Scope profile_scope("index", "cat");
  PNEUMA_CHECK(!tensors.empty(), "cat: expected a non-empty list of tensors");
  const Tensor* ref = nullptr;
  std::vector<bool> skipped(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    PNEUMA_CHECK(t.defined(), "cat: tensor ", i, " is an undefined tensor");
    PNEUMA_CHECK(t.dim() > 0, "cat: zero-dimensional tensor ", i, " (", t.str(), ") cannot be concatenated");
    skipped[i] = legacy_empty(t);
    if (!ref && !skipped[i]) ref = &t;
  }
  if (!ref) return Tensor::empty({0}, tensors[0].dtype(), tensors[0].device());
  const int64_t d = wrap_dim(dim, ref->dim(), "cat");
  Shape shape = ref->shape();
  shape[d] = 0;
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ops::check_same_device("cat", *ref, t);
    ops::check_same_dtype("cat", *ref, t);
    if (skipped[i]) continue;
    PNEUMA_CHECK(t.dim() == ref->dim(), "cat: tensors must have the same number of dimensions, got ", ref->str(),
                 " and ", t.str(), " (tensor ", i, ")");
    for (int64_t k = 0; k < t.dim(); ++k)
      PNEUMA_CHECK(k == d || t.shape()[k] == ref->shape()[k], "cat: sizes of tensors must match except in dim ", d,
                   ": expected size ", ref->shape()[k], " but got size ", t.shape()[k], " at dim ", k, " for tensor ",
                   i, " ", t.str());
    shape[d] += t.shape()[d];
    parts.push_back(t);
  }
  // As torch.cat: channels-last when every part suggests it, else row-major. The copies write
  // through views of out in its own strides, so either layout is filled directly.
  const bool all_channels_last = std::all_of(parts.begin(), parts.end(), [](const Tensor& t) {
    return t.dim() == 4 && t.suggest_memory_format() == MemoryFormat::ChannelsLast;
  });
  Tensor out = Tensor::empty(shape, ref->dtype(), ref->device(),
                             all_channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous);
  if (out.device().is_cuda()) cuda::cat(parts, d, out);
  else cpu::cat(parts, d, out);
  if (autograd::needs_grad(tensors)) autograd::record(std::make_shared<CatBackward>(d, skipped), tensors, out);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  PNEUMA_CHECK(!tensors.empty(), "stack: expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    PNEUMA_CHECK(tensors[i].defined(), "stack: tensor ", i, " is an undefined tensor");
    PNEUMA_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: expects each tensor to be equal size, but got ",
                 shape_str(tensors[0].shape()), " at entry 0 and ", shape_str(tensors[i].shape()), " at entry ", i);
  }
  const int64_t d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(d));
  return cat(parts, d);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "index_select";
  profiler::Scope profile_scope("index", op);
  ops::check_defined(op, x);
  check_index_tensor(op, x, index);
  PNEUMA_CHECK(index.dim() <= 1, op, ": index must be 0-d or 1-d, got ", index.str());
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Shape shape = x.shape();
  if (x.dim() > 0) shape[d] = index.numel();
  else PNEUMA_CHECK(index.numel() == 1, op, ": a 0-d input takes exactly one index, got ", index.str());
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.device().is_cuda()) cuda::index_select(x, d, index, out);
  else cpu::index_select(x, d, index, out);
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<IndexSelectBackward>(d, autograd::save(index)), {x}, out);
  return out;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const char* op = "gather";
  profiler::Scope profile_scope("index", op);
  ops::check_defined(op, x);
  check_index_tensor(op, x, index);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  check_scatter_shapes(op, x, d, index, nullptr);
  const Tensor idx = x.dim() == 0 ? index.reshape({}) : index;
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  if (out.device().is_cuda()) cuda::gather(x, d, idx, out, op);
  else cpu::gather(x, d, idx, out, op);
  if (autograd::needs_grad({&x})) autograd::record(std::make_shared<GatherBackward>(d, autograd::save(idx)), {x}, out);
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add";
  profiler::Scope profile_scope("index", op);
  ops::check_defined(op, x);
  ops::check_defined(op, src, "src");
  check_index_tensor(op, x, index);
  ops::check_same_device(op, x, src);
  ops::check_same_dtype(op, x, src);
  ops::check_floating(op, x);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  PNEUMA_CHECK(src.dim() == index.dim(), op, ": src ", src.str(), " and index ", index.str(),
               " must have the same number of dimensions");
  check_scatter_shapes(op, x, d, index, &src);
  Tensor out = scatter_add_into(x.shape(), x, d, index, src, op, /*check=*/true);
  if (autograd::needs_grad({&x, &src}))
    autograd::record(std::make_shared<ScatterAddBackward>(d, autograd::save(index)), {x, index, src}, out);
  return out;
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
  const char* op = "where";
  profiler::Scope profile_scope("index", op);
  check_bool(op, condition, "condition");
  ops::check_defined(op, a);
  ops::check_defined(op, b);
  ops::check_same_device(op, condition, a);
  ops::check_same_device(op, a, b);
  ops::check_same_dtype(op, a, b);
  const Shape shape = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), op), b.shape(), op);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  if (out.device().is_cuda()) cuda::where(condition, a, b, out);
  else cpu::where(condition, a, b, out);
  if (autograd::needs_grad({&a, &b}))
    autograd::record(std::make_shared<WhereBackward>(autograd::save(condition)), {condition, a, b}, out);
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  const char* op = "masked_fill";
  profiler::Scope profile_scope("index", op);
  ops::check_defined(op, x);
  check_bool(op, mask, "mask");
  ops::check_same_device(op, x, mask);
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), op);
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.device().is_cuda()) cuda::masked_fill(x, mask, value, out);
  else cpu::masked_fill(x, mask, value, out);
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<MaskedFillBackward>(autograd::save(mask)), {x, mask}, out);
  return out;
}

}  // namespace pneuma
