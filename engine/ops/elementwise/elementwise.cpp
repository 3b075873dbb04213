#include "engine/ops/elementwise/elementwise.h"

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/elementwise/elementwise_cpu.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/index/index.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma {

using kern::BinaryOp;
using kern::UnaryOp;

namespace {

constexpr const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "neg";
    case UnaryOp::Exp: return "exp";
    case UnaryOp::Log: return "log";
    case UnaryOp::Sqrt: return "sqrt";
    case UnaryOp::Abs: return "abs";
    case UnaryOp::Relu: return "relu";
    case UnaryOp::Sigmoid: return "sigmoid";
    case UnaryOp::Tanh: return "tanh";
    case UnaryOp::LeakyRelu: return "leaky_relu";
    case UnaryOp::Softplus: return "softplus";
    case UnaryOp::Clamp: return "clamp";
    case UnaryOp::AddScalar: return "add";
    case UnaryOp::MulScalar: return "mul";
    case UnaryOp::PowScalar: return "pow";
  }
  return "?";
}

bool needs_input(UnaryOp op) {
  return op == UnaryOp::Log || op == UnaryOp::Abs || op == UnaryOp::LeakyRelu ||
         op == UnaryOp::Softplus || op == UnaryOp::Clamp || op == UnaryOp::PowScalar;
}
bool needs_output(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Relu ||
         op == UnaryOp::Sigmoid || op == UnaryOp::Tanh;
}

class UnaryBackward final : public autograd::Node {
 public:
  UnaryBackward(UnaryOp op, kern::UnaryParams params, Tensor x, Tensor y)
      : op_(op), params_(params), x_(std::move(x)), y_(std::move(y)) {}
  const char* name() const override { return unary_name(op_); }
  std::vector<Tensor> apply(const Tensor& g) override {
    // dx takes the layout of the tensor the op ran on (a channels-last activation keeps a
    // channels-last gradient), else g's.
    const Tensor& layout = x_.defined() && x_.is_non_overlapping_and_dense()   ? x_
                           : y_.defined() && y_.is_non_overlapping_and_dense() ? y_
                                                                               : g;
    Tensor dx = Tensor::empty_like(layout);
    if (g.device().is_cuda()) cuda::unary_backward(op_, x_, y_, g, dx, params_);
    else cpu::unary_backward(op_, x_, y_, g, dx, params_);
    return {dx};
  }
  void release_saved() override {
    x_ = Tensor();
    y_ = Tensor();
  }

 private:
  UnaryOp op_;
  kern::UnaryParams params_;
  Tensor x_, y_;
};

// Whether an op may write its result over x: x is a dense CPU tensor that is the
// only handle to its storage (no other handle, view or saved copy refers to it), so no
// one can observe the change. Elementwise loops read each element before writing it.
bool can_overwrite(const Tensor& x) {
  return x.defined() && x.device().is_cpu() && x.impl_ptr().use_count() == 1 && x.storage().use_count() == 1 &&
         x.is_non_overlapping_and_dense();
}

// overwrite_input: the result goes into x's memory (can_overwrite(x) must hold).
Tensor unary(UnaryOp op, const Tensor& x, kern::UnaryParams params = {}, bool overwrite_input = false) {
  const char* name = unary_name(op);
  profiler::Scope profile_scope("elementwise", name);
  ops::check_defined(name, x);
  ops::check_floating(name, x);
  Tensor y = overwrite_input ? x.detach() : Tensor::empty_like(x);
  if (x.device().is_cuda()) cuda::unary_forward(op, x, y, params);
  else cpu::unary_forward(op, x, y, params);
  if (autograd::needs_grad({&x})) {
    auto node = std::make_shared<UnaryBackward>(op, params, needs_input(op) ? autograd::save(x) : Tensor(),
                                                needs_output(op) ? autograd::save(y) : Tensor());
    autograd::record(node, {x}, y);
  }
  return y;
}

constexpr const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Ge: return "ge";
    case BinaryOp::Le: return "le";
    case BinaryOp::Eq: return "eq";
  }
  return "?";
}

// Gradients of the binary ops are composed from the forward ops (run without
// recording) and summed back to each operand's shape.
class BinaryBackward final : public autograd::Node {
 public:
  BinaryBackward(BinaryOp op, Tensor a, Tensor b, Tensor out, bool need_a, bool need_b)
      : op_(op), a_(std::move(a)), b_(std::move(b)), out_(std::move(out)), need_a_(need_a), need_b_(need_b) {}
  const char* name() const override { return binary_name(op_); }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor ga, gb;
    switch (op_) {
      case BinaryOp::Add:
        ga = g;
        gb = g;
        break;
      case BinaryOp::Sub:
        ga = g;
        if (need_b_) gb = neg(g);
        break;
      case BinaryOp::Mul:
        if (need_a_) ga = mul(g, b_);
        if (need_b_) gb = mul(g, a_);
        break;
      case BinaryOp::Div:
        if (need_a_) ga = div(g, b_);
        if (need_b_) gb = neg(div(mul(g, out_), b_));
        break;
      case BinaryOp::Pow:
        // d/da a^b = b a^(b-1), 0 where b == 0; d/db a^b = a^b log a, 0 where a == 0 (as PyTorch)
        if (need_a_) ga = masked_fill(mul(g, mul(b_, pow(a_, sub(b_, 1.0)))), eq(b_, Tensor::zeros({}, b_.dtype(), b_.device())), 0.0);
        if (need_b_) gb = mul(g, mul(out_, log_or_zero(a_)));
        break;
      default: PNEUMA_FAIL(name(), ": comparison ops are not differentiable");
    }
    return {need_a_ ? sum_to(ga, input_shapes[0]) : Tensor(), need_b_ ? sum_to(gb, input_shapes[1]) : Tensor()};
  }
  void release_saved() override {
    a_ = Tensor();
    b_ = Tensor();
    out_ = Tensor();
  }

 private:
  static Tensor log_or_zero(const Tensor& a) {
    // log(a), with a == 0 masked to 0 (PyTorch's pow backward masks base == 0).
    return masked_fill(log(a), eq(a, Tensor::zeros({}, a.dtype(), a.device())), 0.0);
  }

  BinaryOp op_;
  Tensor a_, b_, out_;
  bool need_a_, need_b_;
};

// The result of a binary op takes the layout of a dense operand of the result's shape, a's
// first (as torch's TensorIterator), so channels-last operands give a channels-last result.
Tensor empty_in_operand_layout(const Tensor& a, const Tensor& b, const Shape& shape, DType dtype) {
  for (const Tensor* t : {&a, &b})
    if (t->shape() == shape && t->is_non_overlapping_and_dense())
      return Tensor::empty_strided(shape, t->strides(), dtype, a.device());
  return Tensor::empty(shape, dtype, a.device());
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  profiler::Scope profile_scope("elementwise", name);
  ops::check_defined(name, a);
  ops::check_defined(name, b);
  ops::check_same_device(name, a, b);
  ops::check_same_dtype(name, a, b);
  ops::check_floating(name, a);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  const bool comparison = op >= BinaryOp::Gt;
  Tensor out = empty_in_operand_layout(a, b, shape, comparison ? DType::Bool : a.dtype());
  if (a.device().is_cuda()) cuda::binary_forward(op, a, b, out);
  else cpu::binary_forward(op, a, b, out);
  if (!comparison && autograd::needs_grad({&a, &b})) {
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    const bool saves_operands = op == BinaryOp::Mul || op == BinaryOp::Div || op == BinaryOp::Pow;
    const bool saves_output = op == BinaryOp::Div || op == BinaryOp::Pow;
    auto node = std::make_shared<BinaryBackward>(
        op, saves_operands ? autograd::save(a) : Tensor(), saves_operands ? autograd::save(b) : Tensor(),
        saves_output ? autograd::save(out) : Tensor(), need_a, need_b);
    autograd::record(node, {a, b}, out);
  }
  return out;
}

// A 0-d tensor of t's dtype holding value, rounded to that dtype as torch rounds a Python scalar
// it compares with.
Tensor scalar_like(const Tensor& t, double value) { return Tensor::full({}, value, t.dtype(), t.device()); }

kern::UnaryParams scalar_param(double a) { return {a, 0, true, false}; }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor pow(const Tensor& base, const Tensor& exponent) { return binary(BinaryOp::Pow, base, exponent); }

Tensor add(const Tensor& a, double b) { return unary(UnaryOp::AddScalar, a, scalar_param(b)); }
Tensor sub(const Tensor& a, double b) { return unary(UnaryOp::AddScalar, a, scalar_param(-b)); }
Tensor mul(const Tensor& a, double b) { return unary(UnaryOp::MulScalar, a, scalar_param(b)); }
Tensor div(const Tensor& a, double b) { return unary(UnaryOp::MulScalar, a, scalar_param(1.0 / b)); }
Tensor pow(const Tensor& base, double exponent) {
  return unary(UnaryOp::PowScalar, base, scalar_param(exponent));
}

Tensor neg(const Tensor& x) { return unary(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary(UnaryOp::Log, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::Sqrt, x); }
Tensor abs(const Tensor& x) { return unary(UnaryOp::Abs, x); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::Relu, x); }
// relu's backward reads its output only, so overwriting the input loses nothing it needs;
// an input that a producer saved for its own backward shares its storage and is not
// overwritten (can_overwrite).
Tensor relu(Tensor&& x) { return unary(UnaryOp::Relu, x, {}, can_overwrite(x)); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::Tanh, x); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary(UnaryOp::LeakyRelu, x, scalar_param(negative_slope));
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return unary(UnaryOp::Softplus, x, {beta, threshold, true, true});
}
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  PNEUMA_CHECK(min || max, "clamp: at least one of min and max must be given");
  return unary(UnaryOp::Clamp, x, {min.value_or(0), max.value_or(0), min.has_value(), max.has_value()});
}

Tensor gt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Gt, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Lt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Ge, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Le, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Eq, a, b); }
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_like(a, b)); }
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_like(a, b)); }

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  PNEUMA_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(grad.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && grad.shape()[d] != 1)) dims.push_back(d);
  Tensor reduced = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return reduced.reshape(shape);
}

}  // namespace pneuma
