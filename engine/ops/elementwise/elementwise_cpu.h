#pragma once
// CPU loops of the elementwise ops (float32/float64/bfloat16 reference; they are also the fast
// path, being memory-bound flat loops when operands are contiguous).
#include "engine/core/tensor.h"
#include "kernels/elementwise/elementwise_math.cuh"

namespace pneuma::cpu {

// y = f(x); y is contiguous with x's shape.
void unary_forward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const kern::UnaryParams& p);
// dx = f'(x, y) * g; x or y may be undefined when the op does not read it.
void unary_backward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g,
                    const Tensor& dx, const kern::UnaryParams& p);
// out = a (op) b with broadcasting; out has the broadcast shape and is contiguous.
void binary_forward(kern::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);

}  // namespace pneuma::cpu
