#pragma once
// The simple CNN baseline of seed 001 (conv + pooling blocks, then a small dense
// classifier), with BN and global average pooling so that any input size works:
// features.{4i..4i+3} = Conv2d 3x3 (no bias), BatchNorm2d, ReLU, MaxPool2d 2 per block;
// classifier = Linear, ReLU, Dropout, Linear (just one Linear when hidden is 0).
#include <memory>
#include <vector>

#include "engine/nn/extra_layers.h"
#include "engine/nn/sequential.h"
#include "models/classifier.h"

namespace pneuma::models {

struct SimpleCnnOptions {
  int64_t in_channels = 3;
  std::vector<int64_t> channels{16, 32, 64, 128};
  int64_t hidden = 64;
  double dropout = 0.2;
  int64_t num_classes = 1;
};

class SimpleCnn : public ImageClassifier {
 public:
  explicit SimpleCnn(SimpleCnnOptions options = {});

  Tensor feature_map(const Tensor& x) const override { return features->forward(x); }
  Tensor classify(const Tensor& f) const override { return classifier ? classifier->forward(f) : f; }
  int64_t feature_dim() const override { return feature_dim_; }
  std::string classifier_prefix() const override { return "classifier"; }

  std::shared_ptr<nn::Sequential> features, classifier;

 private:
  int64_t feature_dim_;
};

}  // namespace pneuma::models
