#pragma once
// CUDA entry points of the elementwise ops, with the signatures of their CPU twins
// (elementwise_cpu.h, and engine/cpu/copy.h for the copy), for tensors on a CUDA device.
// The op files pick one or the other by the operands' device. Defined in elementwise_cuda.cu
// when the CUDA backend is built; a CPU-only build defines them in engine/cuda/without_cuda.cpp
// to throw (no CUDA tensor can exist there, so nothing reaches them).
#include "engine/core/tensor.h"
#include "kernels/elementwise/elementwise_math.cuh"

namespace pneuma::cuda {

// y = f(x); y has x's shape.
void unary_forward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const kern::UnaryParams& p);
// dx = f'(x, y) * g; x or y may be undefined when the op does not read it.
void unary_backward(kern::UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& dx,
                    const kern::UnaryParams& p);
// out = a (op) b with broadcasting; out has the broadcast shape.
void binary_forward(kern::BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
// dst[i] = convert(src[i]) for tensors of equal shape, any strides and dtypes.
void copy_strided(const Tensor& src, const Tensor& dst);

}  // namespace pneuma::cuda
