#include "engine/nn/extra_layers.h"

#include <cmath>

#include "engine/core/generator.h"
#include "engine/ops/conv/conv.h"
#include "engine/ops/dropout/dropout.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/pool/pool.h"
#include "engine/ops/upsample/upsample.h"

namespace pneuma::nn {

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size,
                                 Options opts)
    : options(opts) {
  PNEUMA_CHECK(opts.groups > 0 && in_channels % opts.groups == 0 && out_channels % opts.groups == 0,
               "ConvTranspose2d: channels ", in_channels, " -> ", out_channels, " not divisible by groups ",
               opts.groups);
  // torch computes fan_in from weight.size(1) = out_channels / groups for this layer.
  const int64_t fan_in = out_channels / opts.groups * kernel_size[0] * kernel_size[1];
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight = register_parameter(
      "weight", uniform_init({in_channels, out_channels / opts.groups, kernel_size[0], kernel_size[1]}, bound));
  if (opts.bias) bias = register_parameter("bias", uniform_init({out_channels}, bound));
}

Tensor ConvTranspose2d::forward(const Tensor& x) const {
  return conv_transpose2d(x, weight, bias, options.stride, options.padding, options.output_padding, options.groups,
                          options.dilation);
}

Tensor BatchNorm1d::forward(const Tensor& x) const {
  PNEUMA_CHECK(x.dim() == 2 || x.dim() == 3, "BatchNorm1d: expected 2D or 3D input (got ", x.dim(), "D input ",
               x.str(), ")");
  return BatchNorm2d::forward(x);
}

Tensor ReLU::forward(const Tensor& x) const { return relu(x); }
Tensor Sigmoid::forward(const Tensor& x) const { return sigmoid(x); }

Dropout::Dropout(double p_) : p(p_) {
  PNEUMA_CHECK(p >= 0 && p <= 1, "Dropout: probability has to be between 0 and 1, but got ", p);
}

Tensor Dropout::forward(const Tensor& x) const {
  if (!is_training() || p == 0) return x;
  return dropout(x, p, true, next_seed());
}

Tensor MaxPool2d::forward(const Tensor& x) const {
  return max_pool2d(x, kernel_size, stride, padding, {1, 1}, ceil_mode);
}

Tensor AvgPool2d::forward(const Tensor& x) const { return avg_pool2d(x, kernel_size, stride, padding); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) const { return adaptive_avg_pool2d(x, output_size); }

Tensor Upsample::forward(const Tensor& x) const {
  return interpolate(x, std::nullopt, std::array<double, 2>{scale_factor, scale_factor}, mode, align_corners);
}

}  // namespace pneuma::nn
