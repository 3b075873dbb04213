#pragma once
// Normalization layers' functional forms, as torch.nn.functional.
#include "engine/core/tensor.h"

namespace pneuma {

// F.batch_norm over dim 1 of an [N, C, *] input ([N, C], [N, C, L], [N, C, H, W], ...).
// weight, bias and the running statistics may be undefined tensors.
// training: normalizes with the batch mean and biased batch variance and, where the
// running statistics are defined, updates them in place (running = (1 - momentum) *
// running + momentum * batch, with the unbiased variance for running_var); the running
// statistics are buffers, never part of the graph. Otherwise normalizes with them.
// Gradients flow to input, weight and bias.
// dtypes: input float32, float64 or bfloat16; weight, bias and the running statistics of the
// input's dtype or, for a bfloat16 input, all float32 (torch's mixed batch norm, what autocast
// runs): the output and the input's gradient take the input's dtype, the statistics are computed
// in float32 and the weight/bias gradients take the parameters' dtype.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(), bool training = false,
                  double momentum = 0.1, double eps = 1e-5);

}  // namespace pneuma
