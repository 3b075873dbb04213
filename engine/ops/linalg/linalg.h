#pragma once
// Matrix products (torch 1.13 semantics), float32/float64/bfloat16. The CPU backend runs them
// through OpenBLAS GEMM, forward and backward (bfloat16: widened to float32, rounded once), the
// CUDA backend through cuBLAS (bfloat16 with float32 accumulation).
#include "engine/core/tensor.h"

namespace pneuma {

// torch.matmul: 1-d x 1-d is a dot product (0-d result); 2-d x 2-d a matrix product;
// a 1-d operand is promoted to a matrix (a row on the left, a column on the right)
// and the added dim removed from the result; with 3 or more dims the leading (batch)
// dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// F.linear: input [..., in_features] @ weight[out_features, in_features]^T + bias[out_features].
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace pneuma
