#pragma once
// U-Net for lung segmentation (Ronneberger et al. 2015 with padded 3x3 convs and batch
// norm), laid out as the widely used PyTorch implementation (milesial/Pytorch-UNet), so a
// twin written in PyTorch has the same state_dict keys: inc, down1..down4, up1..up4,
// outc; each DoubleConv is double_conv.{0: Conv2d, 1: BatchNorm2d, 2: ReLU, 3: Conv2d,
// 4: BatchNorm2d, 5: ReLU}; Down is maxpool_conv.{0: MaxPool2d(2), 1: DoubleConv}; Up is
// up (ConvTranspose2d 2x2 stride 2, or bilinear x2 with align_corners) + conv (DoubleConv).
// Output: out_channels mask logits at the input resolution.
#include <memory>

#include "engine/nn/extra_layers.h"
#include "engine/nn/sequential.h"

namespace pneuma::models {

struct UNetOptions {
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t base_width = 64;  // channels of the first level; doubled per level
  bool bilinear = false;    // false: transposed-conv upsampling
};

class DoubleConv : public nn::Module {
 public:
  DoubleConv(int64_t in_channels, int64_t out_channels, int64_t mid_channels = 0);
  Tensor forward(const Tensor& x) const { return double_conv->forward(x); }
  std::shared_ptr<nn::Sequential> double_conv;
};

class UNetDown : public nn::Module {
 public:
  UNetDown(int64_t in_channels, int64_t out_channels);
  Tensor forward(const Tensor& x) const { return maxpool_conv->forward(x); }
  std::shared_ptr<nn::Sequential> maxpool_conv;
};

class UNetUp : public nn::Module {
 public:
  UNetUp(int64_t in_channels, int64_t out_channels, bool bilinear);
  // Upsamples `deep`, zero-pads it to `skip`'s size (odd sizes), concatenates [skip, deep].
  Tensor forward(const Tensor& deep, const Tensor& skip) const;
  std::shared_ptr<nn::ConvTranspose2d> up_transposed;  // one of these two is set
  std::shared_ptr<nn::Upsample> up_bilinear;
  std::shared_ptr<DoubleConv> conv;
};

class UNet : public nn::Module {
 public:
  explicit UNet(UNetOptions options = {});
  Tensor forward(const Tensor& x) const;
  const UNetOptions& options() const { return options_; }

  std::shared_ptr<DoubleConv> inc;
  std::shared_ptr<UNetDown> down1, down2, down3, down4;
  std::shared_ptr<UNetUp> up1, up2, up3, up4;
  std::shared_ptr<nn::Conv2d> outc;  // registered as outc.conv

 private:
  UNetOptions options_;
};

}  // namespace pneuma::models
