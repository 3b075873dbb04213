#pragma once
// ResNet as torchvision 0.14 (v1.5: the stride of a bottleneck sits on its 3x3 conv):
// same module tree, so state_dict keys and shapes equal torchvision's
// (conv1, bn1, layer1.0.conv1, ..., layer4.2.downsample.1.running_var, fc), and the same
// initialisation (kaiming normal fan_out for convs, BN 1/0, torch's default for fc).
#include <array>
#include <memory>

#include "engine/nn/extra_layers.h"
#include "engine/nn/sequential.h"
#include "models/classifier.h"

namespace pneuma::models {

struct ResNetOptions {
  int64_t num_classes = 1000;  // 0: no fc; forward returns the pooled features
  // Zero-init the last BN of each residual branch, so every block starts as identity.
  bool zero_init_residual = false;
  int64_t in_channels = 3;
};

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, bool downsample);
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  // null when the identity fits
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, bool downsample);
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<nn::Sequential> downsample;
};

class ResNet : public ImageClassifier {
 public:
  enum class Block { Basic, Bottleneck };
  ResNet(Block block, std::array<int64_t, 4> layers, ResNetOptions options = {});

  Tensor feature_map(const Tensor& x) const override;
  Tensor classify(const Tensor& features) const override;
  int64_t feature_dim() const override { return feature_dim_; }
  std::string classifier_prefix() const override { return "fc"; }

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::BatchNorm2d> bn1;
  std::shared_ptr<nn::Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<nn::Linear> fc;  // null with num_classes 0

 private:
  int64_t feature_dim_;
};

std::shared_ptr<ResNet> resnet18(ResNetOptions options = {});
std::shared_ptr<ResNet> resnet34(ResNetOptions options = {});
std::shared_ptr<ResNet> resnet50(ResNetOptions options = {});
std::shared_ptr<ResNet> resnet101(ResNetOptions options = {});
std::shared_ptr<ResNet> resnet152(ResNetOptions options = {});

}  // namespace pneuma::models
