#pragma once
// The unary elementwise ops that the op tests sweep (CUDA parity, bfloat16 on both backends), each
// with an input range inside its domain.
#include "engine/ops/elementwise/elementwise.h"

namespace pneuma::testing {

struct UnaryFunction {
  const char* name;
  Tensor (*f)(const Tensor&);
  double lo, hi;
};

inline const UnaryFunction kUnaryOps[] = {
    {"neg", [](const Tensor& x) { return neg(x); }, -2, 2},
    {"exp", [](const Tensor& x) { return exp(x); }, -2, 2},
    {"log", [](const Tensor& x) { return log(x); }, 0.1, 3},
    {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.1, 3},
    {"abs", [](const Tensor& x) { return abs(x); }, -2, 2},
    {"relu", [](const Tensor& x) { return relu(x); }, -2, 2},
    {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -5, 5},
    {"tanh", [](const Tensor& x) { return tanh(x); }, -3, 3},
    {"leaky_relu", [](const Tensor& x) { return leaky_relu(x, 0.1); }, -2, 2},
    {"softplus", [](const Tensor& x) { return softplus(x, 2.0, 3.0); }, -3, 3},
    {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.5); }, -2, 2},
    {"add scalar", [](const Tensor& x) { return add(x, 1.5); }, -2, 2},
    {"sub scalar", [](const Tensor& x) { return sub(x, 1.3); }, -2, 2},
    {"mul scalar", [](const Tensor& x) { return mul(x, -3.0); }, -2, 2},
    {"div scalar", [](const Tensor& x) { return div(x, 3.0); }, -2, 2},
    {"pow scalar", [](const Tensor& x) { return pow(x, 2.5); }, 0.1, 3},
};

}  // namespace pneuma::testing
