#pragma once
// Reference loops of batch norm (float32/float64). The input is viewed as a contiguous
// [N, C, S] array, S the product of the spatial dims; statistics are per channel, [C].
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// Batch mean and biased variance per channel (accumulated in double).
void batch_norm_stats(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var);

// y = (x - mean) / sqrt(var + eps) * weight + bias; weight/bias may be undefined.
void batch_norm_apply(const Tensor& x, int64_t N, int64_t C, int64_t S, const Tensor& mean, const Tensor& var,
                      const Tensor& weight, const Tensor& bias, double eps, const Tensor& y);

// Gradients of batch_norm given the statistics it normalized with. training: mean and
// var are the batch's own, so they depend on x; otherwise they are constants. Any of
// dx, dweight, dbias may be undefined when not needed; with neither dx nor dweight,
// x, mean, var and weight are not read and may be undefined too.
void batch_norm_backward(const Tensor& x, const Tensor& g, int64_t N, int64_t C, int64_t S, const Tensor& mean,
                         const Tensor& var, const Tensor& weight, double eps, bool training, const Tensor& dx,
                         const Tensor& dweight, const Tensor& dbias);

// running_mean/var (any strides) = (1 - momentum) * running + momentum * batch, with
// var scaled to the unbiased estimate count / (count - 1). Either may be undefined.
void batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                               const Tensor& var, double momentum, int64_t count);

}  // namespace pneuma::cpu
