#include "engine/ops/reduce/reduce.h"

#include <algorithm>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/cpu/parallel.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/reduce/reduce_cuda.h"

namespace pneuma {

namespace ops {

std::vector<int64_t> reduction_dims(const Tensor& x, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, x.dim(), op));
  std::sort(out.begin(), out.end());
  PNEUMA_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op, ": dim repeated in the dim list");
  if (x.dim() == 0) out.clear();
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced) out.push_back(shape[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

Tensor unsqueeze_reduced(const Tensor& grad, const Shape& input_shape, const std::vector<int64_t>& dims) {
  return grad.reshape(reduced_shape(input_shape, dims, /*keepdim=*/true));
}

Tensor reduced_to_last(const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<int64_t> order;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (std::binary_search(dims.begin(), dims.end(), d)) continue;
    order.push_back(d);
    outer *= x.shape()[d];
  }
  for (int64_t d : dims) {
    order.push_back(d);
    inner *= x.shape()[d];
  }
  NoGradGuard no_grad;
  // outer counts the kept dims' elements even when a reduced dim is empty (a sum of nothing is 0).
  return x.permute(order).contiguous().reshape({outer, inner});
}

}  // namespace ops

namespace {

// Accumulates in double: float32 sums of many elements stay accurate.
Tensor sum_cpu(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor rows = ops::reduced_to_last(x, dims);
  Tensor out = Tensor::empty(ops::reduced_shape(x.shape(), dims, keepdim), x.dtype(), x.device());
  const int64_t outer = rows.size(0), inner = rows.size(1);
  dispatch_floating(x.dtype(), "sum", [&]<class T>() {
    const T* in = rows.data<T>();
    T* o = out.data<T>();
    cpu::parallel_for(outer, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        double acc = 0;
        const T* row = in + r * inner;
        for (int64_t i = 0; i < inner; ++i) acc += row[i];
        o[r] = static_cast<T>(acc);
      }
    }, std::max<int64_t>(1, cpu::kParallelGrain / std::max<int64_t>(inner, 1)));
  });
  return out;
}

class SumBackward final : public autograd::Node {
 public:
  SumBackward(std::vector<int64_t> dims, double scale) : dims_(std::move(dims)), scale_(scale) {}
  const char* name() const override { return scale_ == 1.0 ? "sum" : "mean"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor grad = ops::unsqueeze_reduced(g, input_shapes[0], dims_).expand(input_shapes[0]);
    return {scale_ == 1.0 ? grad : mul(grad, scale_)};
  }

 private:
  std::vector<int64_t> dims_;
  double scale_;
};

Tensor reduce_sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim, bool average) {
  const char* name = average ? "mean" : "sum";
  profiler::Scope profile_scope("reduce", name);
  ops::check_defined(name, x);
  ops::check_floating(name, x);
  const std::vector<int64_t> dims = ops::reduction_dims(x, dims_in, name);
  Tensor out = x.device().is_cuda() ? cuda::sum(x, dims, keepdim) : sum_cpu(x, dims, keepdim);
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
  if (average) {
    NoGradGuard no_grad;
    out = mul(out, scale);
  }
  if (autograd::needs_grad({&x})) autograd::record(std::make_shared<SumBackward>(dims, scale), {x}, out);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x) { return reduce_sum(x, {}, false, false); }
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_sum(x, dims, keepdim, false);
}
Tensor mean(const Tensor& x) { return reduce_sum(x, {}, false, true); }
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_sum(x, dims, keepdim, true);
}

}  // namespace pneuma
