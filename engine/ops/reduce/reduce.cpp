#include "engine/ops/reduce/reduce.h"

#include <algorithm>
#include <type_traits>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/cpu/loops.h"
#include "engine/cpu/parallel.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/reduce/reduce_cuda.h"
#include "kernels/reduce/sum_accumulator.cuh"

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

// The float32 sum of n contiguous bfloat16 values: 16 lanes (combined at the end), which the
// compiler vectorizes and which keep each running sum shorter than one accumulator over the whole
// row would.
PNEUMA_BF16_LOOP float bf16_row_sum(const bfloat16* row, int64_t n) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += static_cast<float>(row[i + k]);
  float acc = 0;
  for (int k = 0; k < kLanes; ++k) acc += lanes[k];
  for (; i < n; ++i) acc += static_cast<float>(row[i]);
  return acc;
}

// The sum of n contiguous elements in sum_accumulator_t<T>: float32/float64 add in double, in order.
template <class T>
kern::sum_accumulator_t<T> row_sum(const T* row, int64_t n) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return bf16_row_sum(row, n);
  } else {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += row[i];
    return acc;
  }
}

// scale (1 for sum, 1/count for mean) times the sum over dims, rounded once to x's dtype.
Tensor sum_cpu(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double scale) {
  const Tensor rows = ops::reduced_to_last(x, dims);
  Tensor out = Tensor::empty(ops::reduced_shape(x.shape(), dims, keepdim), x.dtype(), x.device());
  const int64_t outer = rows.size(0), inner = rows.size(1);
  dispatch_floating_and_bfloat16(x.dtype(), "sum", [&]<class T>() {
    using Acc = kern::sum_accumulator_t<T>;
    const Acc acc_scale = static_cast<Acc>(scale);
    const T* in = rows.data<T>();
    T* o = out.data<T>();
    cpu::parallel_for(outer, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) o[r] = static_cast<T>(row_sum(in + r * inner, inner) * acc_scale);
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
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape()[d];
  const double scale = average ? 1.0 / static_cast<double>(count) : 1.0;
  // The mean's division happens on the accumulated sum, before the one rounding to x's dtype.
  Tensor out = x.device().is_cuda() ? cuda::sum(x, dims, keepdim, scale) : sum_cpu(x, dims, keepdim, scale);
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
