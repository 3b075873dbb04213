#include "engine/nn/layers.h"

#include <cmath>

#include "engine/autograd/grad_mode.h"
#include "engine/core/generator.h"
#include "engine/ops/conv/conv.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/linalg/linalg.h"
#include "engine/ops/norm/norm.h"

namespace pneuma::nn {

Tensor uniform_init(const Shape& shape, double bound) {
  NoGradGuard no_grad;
  return sub(mul(Tensor::rand(shape, next_seed()), 2 * bound), bound);
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size, Options opts)
    : options(opts) {
  PNEUMA_CHECK(in_channels % opts.groups == 0 && out_channels % opts.groups == 0, "Conv2d: channels ",
               in_channels, " -> ", out_channels, " not divisible by groups ", opts.groups);
  const int64_t fan_in = in_channels / opts.groups * kernel_size[0] * kernel_size[1];
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  weight = register_parameter("weight", uniform_init({out_channels, in_channels / opts.groups, kernel_size[0], kernel_size[1]}, bound));
  if (opts.bias) bias = register_parameter("bias", uniform_init({out_channels}, bound));
}

Tensor Conv2d::forward(const Tensor& x) const {
  return conv2d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", Tensor::ones({num_features}));
  bias = register_parameter("bias", Tensor::zeros({num_features}));
  running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::Int64));
}

Tensor BatchNorm2d::forward(const Tensor& x) const {
  if (is_training()) num_batches_tracked.data<int64_t>()[0] += 1;
  return batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight = register_parameter("weight", uniform_init({out_features, in_features}, bound));
  if (has_bias) bias = register_parameter("bias", uniform_init({out_features}, bound));
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

}  // namespace pneuma::nn
