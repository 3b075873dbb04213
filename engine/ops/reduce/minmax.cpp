#include "engine/ops/reduce/minmax.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"
#include "engine/ops/index/index_cuda.h"
#include "engine/ops/reduce/minmax_cpu.h"
#include "engine/ops/reduce/reduce_cuda.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma {

namespace {

const char* op_name(bool is_max, bool all_dims_form) {
  if (all_dims_form) return is_max ? "amax" : "amin";
  return is_max ? "max" : "min";
}

// Gradient split evenly among the elements equal to the result (PyTorch's
// evenly_distribute_backward for max()/min(), scale_grad_by_count for amax/amin).
class DistributeBackward final : public autograd::Node {
 public:
  DistributeBackward(const char* name, std::vector<int64_t> dims, bool nan_aware, Tensor x, Tensor y)
      : name_(name), dims_(std::move(dims)), nan_aware_(nan_aware), x_(std::move(x)), y_(std::move(y)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> apply(const Tensor& g) override {
    const Shape& shape = input_shapes[0];
    const Tensor y = ops::unsqueeze_reduced(y_, shape, dims_);
    Tensor mask;
    if (nan_aware_ && std::isnan(y_.item())) mask = 1.0 - eq(x_, x_).to(x_.dtype());  // isnan(x)
    else mask = eq(x_, y).to(x_.dtype());
    const Tensor count = sum(mask, dims_, /*keepdim=*/true);
    return {mul(mask, div(ops::unsqueeze_reduced(g, shape, dims_), count))};
  }
  void release_saved() override {
    x_ = Tensor();
    y_ = Tensor();
  }

 private:
  const char* name_;
  std::vector<int64_t> dims_;
  bool nan_aware_;
  Tensor x_, y_;
};

// The gradient goes to the selected index of each slice.
class SelectBackward final : public autograd::Node {
 public:
  SelectBackward(const char* name, int64_t dim, Tensor indices) : name_(name), dim_(dim), indices_(std::move(indices)) {}
  const char* name() const override { return name_; }
  std::vector<Tensor> apply(const Tensor& g) override {
    const Shape& shape = input_shapes[0];
    if (shape.empty()) return {g};
    const std::vector<int64_t> dims{dim_};
    const Tensor index = ops::unsqueeze_reduced(indices_, shape, dims), src = ops::unsqueeze_reduced(g, shape, dims);
    if (g.device().is_cuda()) {
      // max/min produced the indices, so they are in range: no range check, which on a GPU
      // would cost a host sync every backward.
      Tensor dx = Tensor::zeros(shape, g.dtype(), g.device());
      cuda::scatter_add(dx, dim_, index, src, name_, /*check=*/false);
      return {dx};
    }
    return {scatter_add(Tensor::zeros(shape, g.dtype(), g.device()), dim_, index, src)};
  }
  void release_saved() override { indices_ = Tensor(); }

 private:
  const char* name_;
  int64_t dim_;
  Tensor indices_;
};

void check_input(const char* op, const Tensor& x) {
  ops::check_defined(op, x);
  PNEUMA_CHECK(x.dtype() != DType::BFloat16 && x.dtype() != DType::Float16, op, ": unsupported dtype in ", x.str());
}

// Values (and, with indices wanted, argmax/argmin) over `dims` (sorted, wrapped).
std::pair<Tensor, Tensor> reduce_rows(const char* op, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                                      bool is_max, bool want_indices) {
  for (int64_t d : dims)
    PNEUMA_CHECK(x.shape()[d] > 0, op, ": cannot reduce over dim ", d, " of size 0 in ", x.str());
  const Shape shape = ops::reduced_shape(x.shape(), dims, keepdim);
  Tensor values = Tensor::empty(shape, x.dtype(), x.device());
  Tensor indices = want_indices ? Tensor::empty(shape, DType::Int64, x.device()) : Tensor();
  if (numel_of(shape) == 0) return {values, indices};
  Tensor rows;
  {
    NoGradGuard no_grad;
    rows = ops::reduced_to_last(x, dims);
  }
  if (rows.device().is_cuda()) cuda::minmax_rows(rows, is_max, values, indices);
  else cpu::minmax_rows(rows, is_max, values, indices);
  return {values, indices};
}

Tensor full_reduce(const Tensor& x, bool is_max) {
  const char* op = op_name(is_max, false);
  check_input(op, x);
  PNEUMA_CHECK(x.numel() > 0, op, ": cannot reduce the empty tensor ", x.str(), " without a dim");
  std::vector<int64_t> dims = ops::reduction_dims(x, {}, op);
  Tensor y = reduce_rows(op, x, dims, false, is_max, false).first;
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<DistributeBackward>(op, dims, true, autograd::save(x), autograd::save(y)), {x}, y);
  return y;
}

std::pair<Tensor, Tensor> dim_reduce(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* op = op_name(is_max, false);
  check_input(op, x);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  const std::vector<int64_t> dims = x.dim() == 0 ? std::vector<int64_t>{} : std::vector<int64_t>{d};
  auto [values, indices] = reduce_rows(op, x, dims, keepdim, is_max, true);
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<SelectBackward>(op, d, autograd::save(indices)), {x}, values);
  return {values, indices};
}

Tensor dims_reduce(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, bool is_max) {
  const char* op = op_name(is_max, true);
  check_input(op, x);
  const std::vector<int64_t> dims = ops::reduction_dims(x, dims_in, op);
  Tensor y = reduce_rows(op, x, dims, keepdim, is_max, false).first;
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<DistributeBackward>(op, dims, false, autograd::save(x), autograd::save(y)), {x}, y);
  return y;
}

}  // namespace

Tensor max(const Tensor& x) { return full_reduce(x, true); }
Tensor min(const Tensor& x) { return full_reduce(x, false); }
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) { return dim_reduce(x, dim, keepdim, true); }
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) { return dim_reduce(x, dim, keepdim, false); }
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return dims_reduce(x, dims, keepdim, true); }
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { return dims_reduce(x, dims, keepdim, false); }

}  // namespace pneuma
