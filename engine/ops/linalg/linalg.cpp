#include "engine/ops/linalg/linalg.h"

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/autocast.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/linalg/linalg_cpu.h"
#include "engine/ops/linalg/linalg_cuda.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma {

namespace {

Tensor transposed(const Tensor& t) { return t.transpose(-2, -1); }

// cuBLAS on CUDA tensors, BLAS (or the reference loops) on the CPU.
void gemm_on_device(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate = false) {
  if (out.device().is_cuda()) cuda::gemm(a, b, out, accumulate);
  else cpu::gemm(a, b, out, accumulate);
}

// t [..., r, c] viewed (or copied) as [(...) * r, c].
Tensor fold_rows(const Tensor& t) { return t.reshape({t.numel() == 0 ? numel_of(Shape(t.shape().begin(), t.shape().end() - 1)) : t.numel() / t.size(-1), t.size(-1)}); }

// a [..., m, k] @ b [..., k, n] with broadcast batch dims; no autograd. A batch of
// products with one shared right operand is folded into a single GEMM, as PyTorch does.
Tensor mm_nd(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  const int64_t m = a.size(-2), n = b.size(-1);
  if (b.dim() == 2 && a.dim() > 2) {
    Shape shape = a.shape();
    shape.back() = n;
    const Tensor rows = fold_rows(a);
    Tensor out = Tensor::empty({rows.size(0), n}, a.dtype(), a.device());
    gemm_on_device(rows, b, out);
    return out.view(shape);
  }
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape shape = broadcast_shapes(batch_a, batch_b, "matmul");
  shape.push_back(m);
  shape.push_back(n);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  gemm_on_device(a, b, out);
  return out;
}

// x [..., m, k] @ y [..., k, n] summed to `shape` (the gradient of an operand broadcast along batch
// dims); no autograd. A bfloat16 product that needs the sum is formed and summed in float32 and
// rounded once, as the unbroadcast product (one GEMM) is, instead of summing rounded products.
Tensor mm_sum_to(const Tensor& x, const Tensor& y, const Shape& shape) {
  Shape full = broadcast_shapes(Shape(x.shape().begin(), x.shape().end() - 2),
                                Shape(y.shape().begin(), y.shape().end() - 2), "matmul");
  full.push_back(x.size(-2));
  full.push_back(y.size(-1));
  const bool reduces = numel_of(full) != numel_of(shape);
  if (!reduces || x.dtype() != DType::BFloat16) return sum_to(mm_nd(x, y), shape);
  NoGradGuard no_grad;
  return sum_to(mm_nd(x.to(DType::Float32), y.to(DType::Float32)), shape).to(DType::BFloat16);
}

class MatmulBackward final : public autograd::Node {
 public:
  // a2 is saved only when b needs a gradient and b2 only when a does, so b2's shape is kept apart.
  MatmulBackward(Tensor a2, Tensor b2, Shape b2_shape, Shape out2_shape)
      : a2_(std::move(a2)), b2_(std::move(b2)), b2_shape_(std::move(b2_shape)), out2_shape_(std::move(out2_shape)) {}
  const char* name() const override { return "matmul"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    const Tensor g2 = g.reshape(out2_shape_);
    Tensor ga, gb;
    if (next[0]) {  // dA = dC @ B^T, summed over the batch dims A was broadcast along
      ga = mm_sum_to(g2, transposed(b2_), a_shape()).reshape(input_shapes[0]);
    }
    if (next[1]) {  // dB = A^T @ dC
      if (b2_shape_.size() == 2 && g2.dim() > 2) gb = mm_nd(transposed(fold_rows(a2_)), fold_rows(g2));
      else gb = mm_sum_to(transposed(a2_), g2, b2_shape_);
      gb = gb.reshape(input_shapes[1]);
    }
    return {ga, gb};
  }
  void release_saved() override {
    a2_ = Tensor();
    b2_ = Tensor();
  }

 private:
  // The shape of the (at least 2-d) left operand.
  Shape a_shape() const {
    Shape s = input_shapes[0];
    if (s.size() == 1) s.insert(s.begin(), 1);
    return s;
  }
  Tensor a2_, b2_;  // the operands promoted to >= 2-d (a2_ only kept for dB, b2_ for dA)
  Shape b2_shape_, out2_shape_;
};

void check_batch_dims(const Tensor& a, const Tensor& a2, const Tensor& b, const Tensor& b2) {
  const int64_t na = a2.dim() - 2, nb = b2.dim() - 2;
  for (int64_t i = 1; i <= std::min(na, nb); ++i) {
    const int64_t da = a2.shape()[na - i], db = b2.shape()[nb - i];
    PNEUMA_CHECK(da == db || da == 1 || db == 1, "matmul: batch dims of ", shape_str(a.shape()), " and ",
                 shape_str(b.shape()), " cannot be broadcast together (", da, " vs ", db, ")");
  }
}

class LinearBackward final : public autograd::Node {
 public:
  LinearBackward(Tensor x2, Tensor weight) : x2_(std::move(x2)), weight_(std::move(weight)) {}
  const char* name() const override { return "linear"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    const int64_t out_features = g.dim() == 0 ? 1 : g.size(-1);
    const Tensor g2 = fold_rows(g.reshape(g.dim() <= 1 ? Shape{1, out_features} : g.shape()));
    Tensor gx, gw, gb;
    if (next[0]) {
      gx = Tensor::empty({g2.size(0), weight_.size(1)}, g.dtype(), g.device());
      gemm_on_device(g2, weight_, gx);
      gx = gx.view(input_shapes[0]);
    }
    if (next[1]) {
      gw = Tensor::empty(input_shapes[1], g.dtype(), g.device());
      gemm_on_device(transposed(g2), x2_, gw);
    }
    if (next.size() > 2 && next[2]) gb = sum(g2, {0});
    return {gx, gw, gb};
  }
  void release_saved() override {
    x2_ = Tensor();
    weight_ = Tensor();
  }

 private:
  Tensor x2_, weight_;  // x2_ only kept for dW, weight_ for dX
};

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast::to_lower_precision(a_in);
  const Tensor b = autocast::to_lower_precision(b_in);
  const char* op = "matmul";
  profiler::Scope profile_scope("linalg", op);
  ops::check_defined(op, a);
  ops::check_defined(op, b);
  ops::check_same_device(op, a, b);
  ops::check_same_dtype(op, a, b);
  ops::check_floating(op, a);
  PNEUMA_CHECK(a.dim() >= 1 && b.dim() >= 1, op, ": both arguments need to be at least 1-d, got ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  Tensor a2, b2;
  {
    NoGradGuard no_grad;
    a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
    b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  }
  PNEUMA_CHECK(a2.size(-1) == b2.size(-2), op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
               " cannot be multiplied (", a2.size(-1), " != ", b2.size(-2), ")");
  check_batch_dims(a, a2, b, b2);
  Tensor out2 = mm_nd(a2, b2);
  Shape shape = out2.shape();
  if (b.dim() == 1) shape.erase(shape.end() - 1);
  if (a.dim() == 1) shape.erase(shape.end() - (b.dim() == 1 ? 1 : 2));
  Tensor out;
  {
    NoGradGuard no_grad;
    out = shape == out2.shape() ? out2 : out2.view(shape);
  }
  if (autograd::needs_grad({&a, &b})) {
    auto node = std::make_shared<MatmulBackward>(b.requires_grad() ? autograd::save(a2) : Tensor(),
                                                 a.requires_grad() ? autograd::save(b2) : Tensor(), b2.shape(),
                                                 out2.shape());
    autograd::record(node, {a, b}, out);
  }
  return out;
}

Tensor linear(const Tensor& input_in, const Tensor& weight_in, const Tensor& bias_in) {
  const Tensor input = autocast::to_lower_precision(input_in);
  const Tensor weight = autocast::to_lower_precision(weight_in);
  const Tensor bias = autocast::to_lower_precision(bias_in);
  const char* op = "linear";
  profiler::Scope profile_scope("linalg", op);
  ops::check_defined(op, input);
  ops::check_defined(op, weight, "weight");
  ops::check_same_device(op, input, weight);
  ops::check_same_dtype(op, input, weight);
  ops::check_floating(op, input);
  PNEUMA_CHECK(weight.dim() == 2, op, ": weight must be 2-d [out_features, in_features], got ", weight.str());
  PNEUMA_CHECK(input.dim() >= 1, op, ": input must be at least 1-d [..., in_features], got ", input.str());
  const int64_t in_features = weight.size(1), out_features = weight.size(0);
  PNEUMA_CHECK(input.size(-1) == in_features, op, ": input ", input.str(), " has ", input.size(-1),
               " features but weight ", weight.str(), " expects ", in_features);
  if (bias.defined()) {
    ops::check_same_device(op, input, bias);
    ops::check_same_dtype(op, input, bias);
    PNEUMA_CHECK(bias.dim() == 1 && bias.size(0) == out_features, op, ": bias ", bias.str(),
                 " must be 1-d with out_features = ", out_features, " elements (weight ", weight.str(), ")");
  }
  Tensor x2;
  {
    NoGradGuard no_grad;
    x2 = fold_rows(input.dim() == 1 ? input.unsqueeze(0) : input);
  }
  Tensor out2 = Tensor::empty({x2.size(0), out_features}, input.dtype(), input.device());
  if (bias.defined()) {
    if (out2.device().is_cuda()) cuda::fill_rows(bias, out2);
    else cpu::fill_rows(bias, out2);
  }
  {
    NoGradGuard no_grad;
    gemm_on_device(x2, transposed(weight), out2, /*accumulate=*/bias.defined());
  }
  Shape shape = input.shape();
  shape.back() = out_features;
  Tensor out;
  {
    NoGradGuard no_grad;
    out = out2.view(shape);
  }
  std::vector<Tensor> inputs{input, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (autograd::needs_grad(inputs)) {
    auto node = std::make_shared<LinearBackward>(weight.requires_grad() ? autograd::save(x2) : Tensor(),
                                                 input.requires_grad() ? autograd::save(weight) : Tensor());
    autograd::record(node, inputs, out);
  }
  return out;
}

}  // namespace pneuma
