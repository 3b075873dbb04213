#pragma once
// DenseNet-BC as torchvision 0.14: features.conv0/norm0/relu0/pool0, denseblockK with
// denselayerJ (norm1, relu1, conv1, norm2, relu2, conv2), transitionK (norm, relu, conv,
// pool), norm5, then ReLU, global average pool and the classifier Linear. State dict keys
// and shapes equal torchvision's (features.denseblock1.denselayer1.norm1.running_mean,
// ...), and so does the initialisation (kaiming normal convs, BN 1/0, classifier bias 0).
#include <array>
#include <memory>

#include "engine/nn/extra_layers.h"
#include "engine/nn/sequential.h"
#include "models/classifier.h"

namespace pneuma::models {

struct DenseNetOptions {
  int64_t growth_rate = 32;
  std::array<int64_t, 4> block_config{6, 12, 24, 16};
  int64_t num_init_features = 64;
  int64_t bn_size = 4;
  double drop_rate = 0;
  int64_t num_classes = 1000;  // 0: no classifier; forward returns the pooled features
  int64_t in_channels = 3;
};

class DenseLayer : public nn::Module {
 public:
  DenseLayer(int64_t num_input_features, int64_t growth_rate, int64_t bn_size, double drop_rate);
  // The new growth_rate channels computed from the concatenation of all earlier outputs.
  Tensor forward(const Tensor& concatenated) const;

  std::shared_ptr<nn::BatchNorm2d> norm1, norm2;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  double drop_rate;
};

class DenseBlock : public nn::Module {
 public:
  DenseBlock(int64_t num_layers, int64_t num_input_features, int64_t bn_size, int64_t growth_rate, double drop_rate);
  Tensor forward(const Tensor& x) const;

  std::vector<std::shared_ptr<DenseLayer>> layers;
};

class DenseNet : public ImageClassifier {
 public:
  explicit DenseNet(DenseNetOptions options = {});

  // ReLU(norm5(...)): the map torchvision pools.
  Tensor feature_map(const Tensor& x) const override;
  Tensor classify(const Tensor& features) const override;
  int64_t feature_dim() const override { return feature_dim_; }
  std::string classifier_prefix() const override { return "classifier"; }

  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<nn::Linear> classifier;  // null with num_classes 0

 private:
  int64_t feature_dim_;
};

std::shared_ptr<DenseNet> densenet121(int64_t num_classes = 1000);
std::shared_ptr<DenseNet> densenet161(int64_t num_classes = 1000);
std::shared_ptr<DenseNet> densenet169(int64_t num_classes = 1000);
std::shared_ptr<DenseNet> densenet201(int64_t num_classes = 1000);

}  // namespace pneuma::models
