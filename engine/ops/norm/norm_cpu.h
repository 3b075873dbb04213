#pragma once
// Reference loops of batch norm. The input is viewed as a contiguous [N, C, S] array, S the
// product of the spatial dims; statistics are per channel, [C]. A channels-last (NHWC) input is
// the contiguous [N * H * W, C, 1] array: with S == 1 the loops run along rows, across channels. Data (x, y, g, dx) are float32,
// float64 or bfloat16; mean and var (the statistics normalized with) float32 for bfloat16 data,
// the data's dtype otherwise; weight, bias, their gradients and the running statistics of the
// data's dtype or, for bfloat16 data, float32 (norm_types.h). Sums and per-channel terms are
// computed in double for float32/float64 data, in float for bfloat16 (batch_norm_acc_t).
#include <cstdint>

#include "engine/core/tensor.h"

namespace pneuma::cpu {

// Batch mean and biased variance per channel.
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

// running_mean/var (any strides) = (1 - momentum) * running + momentum * batch (the batch
// statistics of batch_norm_stats; bfloat16 running statistics take float32 ones), with
// var scaled to the unbiased estimate count / (count - 1). Either may be undefined.
void batch_norm_update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                               const Tensor& var, double momentum, int64_t count);

}  // namespace pneuma::cpu
