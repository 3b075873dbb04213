#pragma once
// More torch.nn layers as modules: the ones with parameters keep torch's names, shapes
// and default init; the parameterless ones exist so that nn::Sequential indices and
// state_dict keys match PyTorch's.
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "engine/nn/layers.h"

namespace pneuma::nn {

class ConvTranspose2d : public Module {
 public:
  struct Options {
    std::array<int64_t, 2> stride{1, 1};
    std::array<int64_t, 2> padding{0, 0};
    std::array<int64_t, 2> output_padding{0, 0};
    int64_t groups = 1;
    bool bias = true;
    std::array<int64_t, 2> dilation{1, 1};
  };
  // weight [in, out / groups, kH, kW], as torch.
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, std::array<int64_t, 2> kernel_size, Options options);
  Tensor forward(const Tensor& x) const;

  Tensor weight, bias;
  Options options;
};

// BatchNorm2d's parameters and statistics over [N, C] or [N, C, L] inputs.
class BatchNorm1d : public BatchNorm2d {
 public:
  using BatchNorm2d::BatchNorm2d;
  Tensor forward(const Tensor& x) const;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) const;
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) const;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) const { return x; }
};

// torch.nn.Flatten(start_dim = 1).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) const { return x.flatten(start_dim, end_dim); }
  int64_t start_dim, end_dim;
};

// Each training forward draws a fresh mask seed from the default generator.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) const;
  double p;
};

class MaxPool2d : public Module {
 public:
  // stride {0, 0}: equal to kernel_size (torch's stride=None).
  explicit MaxPool2d(std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
                     std::array<int64_t, 2> padding = {0, 0}, bool ceil_mode = false)
      : kernel_size(kernel_size), stride(stride), padding(padding), ceil_mode(ceil_mode) {}
  Tensor forward(const Tensor& x) const;
  std::array<int64_t, 2> kernel_size, stride, padding;
  bool ceil_mode;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride = {0, 0},
                     std::array<int64_t, 2> padding = {0, 0})
      : kernel_size(kernel_size), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) const;
  std::array<int64_t, 2> kernel_size, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(std::array<int64_t, 2> output_size) : output_size(output_size) {}
  Tensor forward(const Tensor& x) const;
  std::array<int64_t, 2> output_size;
};

// torch.nn.Upsample with a scale factor, mode "nearest" or "bilinear".
class Upsample : public Module {
 public:
  Upsample(double scale_factor, std::string mode = "nearest", std::optional<bool> align_corners = std::nullopt)
      : scale_factor(scale_factor), mode(std::move(mode)), align_corners(align_corners) {}
  Tensor forward(const Tensor& x) const;
  double scale_factor;
  std::string mode;
  std::optional<bool> align_corners;
};

}  // namespace pneuma::nn
