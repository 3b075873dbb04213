#include "models/densenet.h"

#include "engine/core/generator.h"
#include "engine/nn/init.h"
#include "engine/ops/dropout/dropout.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/index/index.h"

namespace pneuma::models {

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding) {
  nn::Conv2d::Options o;
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  o.bias = false;
  return std::make_shared<nn::Conv2d>(in, out, std::array<int64_t, 2>{k, k}, o);
}
}  // namespace

DenseLayer::DenseLayer(int64_t in, int64_t growth_rate, int64_t bn_size, double drop_rate_) : drop_rate(drop_rate_) {
  norm1 = register_module("norm1", std::make_shared<nn::BatchNorm2d>(in));
  conv1 = register_module("conv1", conv(in, bn_size * growth_rate, 1, 1, 0));
  norm2 = register_module("norm2", std::make_shared<nn::BatchNorm2d>(bn_size * growth_rate));
  conv2 = register_module("conv2", conv(bn_size * growth_rate, growth_rate, 3, 1, 1));
}

Tensor DenseLayer::forward(const Tensor& concatenated) const {
  const Tensor bottleneck = conv1->forward(relu(norm1->forward(concatenated)));
  Tensor out = conv2->forward(relu(norm2->forward(bottleneck)));
  if (drop_rate > 0 && is_training()) out = dropout(out, drop_rate, true, next_seed());
  return out;
}

DenseBlock::DenseBlock(int64_t num_layers, int64_t in, int64_t bn_size, int64_t growth_rate, double drop_rate) {
  for (int64_t i = 0; i < num_layers; ++i)
    layers.push_back(register_module("denselayer" + std::to_string(i + 1),
                                     std::make_shared<DenseLayer>(in + i * growth_rate, growth_rate, bn_size, drop_rate)));
}

Tensor DenseBlock::forward(const Tensor& x) const {
  std::vector<Tensor> features{x};
  Tensor concatenated = x;
  for (const auto& layer : layers) {
    features.push_back(layer->forward(concatenated));
    concatenated = cat(features, 1);
  }
  return concatenated;
}

DenseNet::DenseNet(DenseNetOptions o) {
  PNEUMA_CHECK(o.num_classes >= 0, "DenseNet: num_classes must be >= 0, got ", o.num_classes);
  num_classes_ = o.num_classes;
  features = register_module("features", std::make_shared<nn::Sequential>());
  features->add("conv0", conv(o.in_channels, o.num_init_features, 7, 2, 3));
  features->add("norm0", std::make_shared<nn::BatchNorm2d>(o.num_init_features));
  features->add("relu0", std::make_shared<nn::ReLU>());
  features->add("pool0", std::make_shared<nn::MaxPool2d>(std::array<int64_t, 2>{3, 3}, std::array<int64_t, 2>{2, 2},
                                                         std::array<int64_t, 2>{1, 1}));
  int64_t n = o.num_init_features;
  for (size_t i = 0; i < o.block_config.size(); ++i) {
    features->add("denseblock" + std::to_string(i + 1),
                  std::make_shared<DenseBlock>(o.block_config[i], n, o.bn_size, o.growth_rate, o.drop_rate));
    n += o.block_config[i] * o.growth_rate;
    if (i + 1 != o.block_config.size()) {
      auto t = std::make_shared<nn::Sequential>();
      t->add("norm", std::make_shared<nn::BatchNorm2d>(n));
      t->add("relu", std::make_shared<nn::ReLU>());
      t->add("conv", conv(n, n / 2, 1, 1, 0));
      t->add("pool", std::make_shared<nn::AvgPool2d>(std::array<int64_t, 2>{2, 2}, std::array<int64_t, 2>{2, 2}));
      features->add("transition" + std::to_string(i + 1), t);
      n /= 2;
    }
  }
  features->add("norm5", std::make_shared<nn::BatchNorm2d>(n));
  feature_dim_ = n;
  if (num_classes_ > 0) classifier = register_module("classifier", std::make_shared<nn::Linear>(n, num_classes_));

  for (auto& [name, m] : named_modules())
    if (auto* c = dynamic_cast<nn::Conv2d*>(m)) nn::init::kaiming_normal_(c->weight, "fan_in");
  if (classifier) nn::init::zeros_(classifier->bias);
}

Tensor DenseNet::feature_map(const Tensor& x) const { return relu(features->forward(x)); }

Tensor DenseNet::classify(const Tensor& f) const { return classifier ? classifier->forward(f) : f; }

namespace {
std::shared_ptr<DenseNet> make(int64_t growth, std::array<int64_t, 4> blocks, int64_t init, int64_t num_classes) {
  DenseNetOptions o;
  o.growth_rate = growth;
  o.block_config = blocks;
  o.num_init_features = init;
  o.num_classes = num_classes;
  return std::make_shared<DenseNet>(o);
}
}  // namespace

std::shared_ptr<DenseNet> densenet121(int64_t c) { return make(32, {6, 12, 24, 16}, 64, c); }
std::shared_ptr<DenseNet> densenet161(int64_t c) { return make(48, {6, 12, 36, 24}, 96, c); }
std::shared_ptr<DenseNet> densenet169(int64_t c) { return make(32, {6, 12, 32, 32}, 64, c); }
std::shared_ptr<DenseNet> densenet201(int64_t c) { return make(32, {6, 12, 48, 32}, 64, c); }

}  // namespace pneuma::models
