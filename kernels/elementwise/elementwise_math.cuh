#pragma once
// Per-element math of the elementwise ops, written once for the CPU reference loops
// and the CUDA kernels. Backward formulas follow PyTorch's derivatives.yaml.
//
// T is the storage type. A storage type narrower than its compute type (bfloat16) is loaded,
// widened to opmath_t<T> (float), computed there and rounded once on store, as PyTorch does;
// the formulas below are written for the compute type, and without a * b + c patterns (which
// compilers fuse into FMAs on some targets only: see PNEUMA_BF16_LOOP in engine/cpu/loops.h).
#include <cmath>
#include <type_traits>

#include "engine/core/bfloat16.h"

#if defined(__CUDACC__)
#define PNEUMA_ELEMENTWISE_HD __host__ __device__ inline
#else
#define PNEUMA_ELEMENTWISE_HD inline
#endif

namespace pneuma::kern {

enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Abs, Relu, Sigmoid, Tanh, LeakyRelu, Softplus, Clamp,
  AddScalar, MulScalar, PowScalar,
};

// a, b: the op's scalar parameters (slope; beta/threshold; min/max; scalar operand).
struct UnaryParams {
  double a = 0;
  double b = 0;
  bool has_a = false;
  bool has_b = false;
};

// Whether T is a storage-only type whose math runs in opmath_t<T>.
template <class T>
inline constexpr bool computes_wider = !std::is_same_v<T, opmath_t<T>>;

template <UnaryOp OP, class T>
PNEUMA_ELEMENTWISE_HD T unary_forward(T x, const UnaryParams& p) {
  using std::exp, std::log, std::sqrt, std::abs, std::tanh, std::log1p, std::pow;
  if constexpr (computes_wider<T>) return T(unary_forward<OP, opmath_t<T>>(static_cast<opmath_t<T>>(x), p));
  else if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::Exp) return exp(x);
  else if constexpr (OP == UnaryOp::Log) return log(x);
  else if constexpr (OP == UnaryOp::Sqrt) return sqrt(x);
  else if constexpr (OP == UnaryOp::Abs) return abs(x);
  else if constexpr (OP == UnaryOp::Relu) return x < T(0) ? T(0) : x;  // NaN and -0 pass through, as torch.relu
  else if constexpr (OP == UnaryOp::Sigmoid) return T(1) / (T(1) + exp(-x));
  else if constexpr (OP == UnaryOp::Tanh) return tanh(x);
  else if constexpr (OP == UnaryOp::LeakyRelu) return x > T(0) ? x : x * T(p.a);
  else if constexpr (OP == UnaryOp::Softplus) {
    const T bx = x * T(p.a);
    return bx > T(p.b) ? x : log1p(exp(bx)) / T(p.a);
  } else if constexpr (OP == UnaryOp::Clamp) {
    T y = x;
    if (p.has_a && y < T(p.a)) y = T(p.a);
    if (p.has_b && y > T(p.b)) y = T(p.b);
    return x != x ? x : y;  // NaN propagates, as in PyTorch
  } else if constexpr (OP == UnaryOp::AddScalar) return x + T(p.a);
  else if constexpr (OP == UnaryOp::MulScalar) return x * T(p.a);
  else return pow(x, T(p.a));  // PowScalar
}

// Which values the backward formula reads: the input x, the output y, or both.
template <UnaryOp OP>
constexpr bool unary_backward_needs_input() {
  return OP == UnaryOp::Log || OP == UnaryOp::Abs || OP == UnaryOp::LeakyRelu ||
         OP == UnaryOp::Softplus || OP == UnaryOp::Clamp || OP == UnaryOp::PowScalar;
}
template <UnaryOp OP>
constexpr bool unary_backward_needs_output() {
  return OP == UnaryOp::Exp || OP == UnaryOp::Sqrt || OP == UnaryOp::Relu ||
         OP == UnaryOp::Sigmoid || OP == UnaryOp::Tanh;
}

template <UnaryOp OP, class T>
PNEUMA_ELEMENTWISE_HD T unary_backward(T x, T y, T g, const UnaryParams& p) {
  using std::exp, std::pow;
  if constexpr (computes_wider<T>) {
    using C = opmath_t<T>;
    return T(unary_backward<OP, C>(static_cast<C>(x), static_cast<C>(y), static_cast<C>(g), p));
  } else if constexpr (OP == UnaryOp::Neg) return -g;
  else if constexpr (OP == UnaryOp::Exp) return g * y;
  else if constexpr (OP == UnaryOp::Log) return g / x;
  else if constexpr (OP == UnaryOp::Sqrt) return g / (T(2) * y);
  else if constexpr (OP == UnaryOp::Abs) return x > T(0) ? g : (x < T(0) ? -g : T(0));
  else if constexpr (OP == UnaryOp::Relu) return y <= T(0) ? T(0) : g;  // torch threshold_backward: NaN keeps its gradient
  else if constexpr (OP == UnaryOp::Sigmoid) return g * y * (T(1) - y);
  // 1 - y^2 as (1 - y)(1 + y): no multiply-add for a compiler to fuse into an FMA on one target
  // and not another (the CPU's AVX2 clones of the bfloat16 loops, nvcc), and no cancellation as
  // |y| nears 1.
  else if constexpr (OP == UnaryOp::Tanh) return g * ((T(1) - y) * (T(1) + y));
  else if constexpr (OP == UnaryOp::LeakyRelu) return x > T(0) ? g : g * T(p.a);
  else if constexpr (OP == UnaryOp::Softplus) {
    const T bx = x * T(p.a);
    if (bx > T(p.b)) return g;
    const T z = exp(bx);
    return g * z / (z + T(1));
  } else if constexpr (OP == UnaryOp::Clamp) {
    const bool inside = (!p.has_a || x >= T(p.a)) && (!p.has_b || x <= T(p.b));
    return inside ? g : T(0);
  } else if constexpr (OP == UnaryOp::AddScalar) return g;
  else if constexpr (OP == UnaryOp::MulScalar) return g * T(p.a);
  else {  // PowScalar: d/dx x^e = e x^(e-1); exponent 0 gives 0 as in PyTorch
    if (p.a == 0.0) return T(0);
    return g * T(p.a) * pow(x, T(p.a - 1.0));
  }
}

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Gt, Lt, Ge, Le, Eq };

template <BinaryOp OP, class T>
PNEUMA_ELEMENTWISE_HD auto binary_forward(T a, T b) {
  if constexpr (computes_wider<T>) {
    using C = opmath_t<T>;
    const auto result = binary_forward<OP, C>(static_cast<C>(a), static_cast<C>(b));
    if constexpr (std::is_same_v<std::remove_const_t<decltype(result)>, bool>) return result;  // comparisons
    else return T(result);
  } else if constexpr (OP == BinaryOp::Add) return a + b;
  else if constexpr (OP == BinaryOp::Sub) return a - b;
  else if constexpr (OP == BinaryOp::Mul) return a * b;
  else if constexpr (OP == BinaryOp::Div) return a / b;
  else if constexpr (OP == BinaryOp::Pow) return static_cast<T>(std::pow(a, b));
  else if constexpr (OP == BinaryOp::Gt) return a > b;
  else if constexpr (OP == BinaryOp::Lt) return a < b;
  else if constexpr (OP == BinaryOp::Ge) return a >= b;
  else if constexpr (OP == BinaryOp::Le) return a <= b;
  else return a == b;
}

// Element conversion of a dtype-changing copy (CPU loops and CUDA kernel): through double, exact
// for every source type but int64 beyond 2^53, and "not zero" for bool. bfloat16 converts through
// float, exactly when widening; a double narrows to float first and then rounds to bfloat16 (a
// double rounding, as torch's .to(torch.bfloat16)).
template <class D, class S>
PNEUMA_ELEMENTWISE_HD D convert_element(S value) {
  if constexpr (std::is_same_v<D, S>) {
    return value;
  } else if constexpr (std::is_same_v<S, bfloat16>) {
    return convert_element<D, float>(static_cast<float>(value));
  } else if constexpr (std::is_same_v<D, bfloat16>) {
    if constexpr (std::is_same_v<S, float>) return bfloat16(value);
    else return bfloat16(static_cast<float>(convert_element<double, S>(value)));
  } else if constexpr (std::is_same_v<D, bool>) {
    return static_cast<double>(value) != 0.0;
  } else {
    return static_cast<D>(static_cast<double>(value));
  }
}

// Call fn.template operator()<OP>() with the runtime op as a compile-time constant, so that each
// op gets its own instantiation of the per-element math: in the CPU loops and in the kernel
// launches alike.
template <class Fn>
void with_unary_op(UnaryOp op, Fn&& fn) {
  switch (op) {
#define PNEUMA_CASE(name) \
  case UnaryOp::name: return fn.template operator()<UnaryOp::name>();
    PNEUMA_CASE(Neg) PNEUMA_CASE(Exp) PNEUMA_CASE(Log) PNEUMA_CASE(Sqrt) PNEUMA_CASE(Abs)
    PNEUMA_CASE(Relu) PNEUMA_CASE(Sigmoid) PNEUMA_CASE(Tanh) PNEUMA_CASE(LeakyRelu)
    PNEUMA_CASE(Softplus) PNEUMA_CASE(Clamp) PNEUMA_CASE(AddScalar) PNEUMA_CASE(MulScalar)
    PNEUMA_CASE(PowScalar)
#undef PNEUMA_CASE
  }
}

template <class Fn>
void with_binary_op(BinaryOp op, Fn&& fn) {
  switch (op) {
#define PNEUMA_CASE(name) \
  case BinaryOp::name: return fn.template operator()<BinaryOp::name>();
    PNEUMA_CASE(Add) PNEUMA_CASE(Sub) PNEUMA_CASE(Mul) PNEUMA_CASE(Div) PNEUMA_CASE(Pow)
    PNEUMA_CASE(Gt) PNEUMA_CASE(Lt) PNEUMA_CASE(Ge) PNEUMA_CASE(Le) PNEUMA_CASE(Eq)
#undef PNEUMA_CASE
  }
}

}  // namespace pneuma::kern
