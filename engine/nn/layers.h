#pragma once
// The basic layers, with torch.nn's parameter names, shapes and default init.
#include <array>
#include <cstdint>

#include "engine/nn/module.h"

namespace pneuma::nn {

class Conv2d : public Module {
 public:
  struct Options {
    std::array<int64_t, 2> stride{1, 1};
    std::array<int64_t, 2> padding{0, 0};
    std::array<int64_t, 2> dilation{1, 1};
    int64_t groups = 1;
    bool bias = true;
  };
  Conv2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size, Options options);
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : Conv2d(in_channels, out_channels, {kernel_size, kernel_size}, Options{}) {}
  Tensor forward(const Tensor& x) const;

  Tensor weight, bias;
  Options options;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) const;

  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) const;

  Tensor weight, bias;
};

// PyTorch's default init for conv and linear layers: kaiming_uniform(a = sqrt(5)) on the
// weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
Tensor uniform_init(const Shape& shape, double bound);

}  // namespace pneuma::nn
