#include "models/resnet.h"

#include "engine/nn/init.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/pool/pool.h"

namespace pneuma::models {

namespace {

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t padding) {
  nn::Conv2d::Options o;
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  o.bias = false;
  return std::make_shared<nn::Conv2d>(in, out, std::array<int64_t, 2>{k, k}, o);
}

std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride) {
  auto d = std::make_shared<nn::Sequential>();
  d->add(conv(in, out, 1, stride, 0));
  d->add(std::make_shared<nn::BatchNorm2d>(out));
  return d;
}

template <class B>
std::shared_ptr<nn::Sequential> make_layer(int64_t& inplanes, int64_t planes, int64_t blocks, int64_t stride) {
  auto layer = std::make_shared<nn::Sequential>();
  const bool down = stride != 1 || inplanes != planes * B::expansion;
  layer->add(std::make_shared<B>(inplanes, planes, stride, down));
  inplanes = planes * B::expansion;
  for (int64_t i = 1; i < blocks; ++i) layer->add(std::make_shared<B>(inplanes, planes, 1, false));
  return layer;
}

}  // namespace

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, bool down) {
  conv1 = register_module("conv1", conv(inplanes, planes, 3, stride, 1));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  if (down) downsample = register_module("downsample", make_downsample(inplanes, planes * expansion, stride));
}

Tensor BasicBlock::forward(const Tensor& x) const {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  return relu(add(out, downsample ? downsample->forward(x) : x));
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, bool down) {
  conv1 = register_module("conv1", conv(inplanes, planes, 1, 1, 0));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
  conv3 = register_module("conv3", conv(planes, planes * expansion, 1, 1, 0));
  bn3 = register_module("bn3", std::make_shared<nn::BatchNorm2d>(planes * expansion));
  if (down) downsample = register_module("downsample", make_downsample(inplanes, planes * expansion, stride));
}

Tensor Bottleneck::forward(const Tensor& x) const {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = relu(bn2->forward(conv2->forward(out)));
  out = bn3->forward(conv3->forward(out));
  return relu(add(out, downsample ? downsample->forward(x) : x));
}

ResNet::ResNet(Block block, std::array<int64_t, 4> layers, ResNetOptions options) {
  PNEUMA_CHECK(options.num_classes >= 0, "ResNet: num_classes must be >= 0, got ", options.num_classes);
  num_classes_ = options.num_classes;
  int64_t inplanes = 64;
  conv1 = register_module("conv1", conv(options.in_channels, 64, 7, 2, 3));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
  const std::array<int64_t, 4> planes{64, 128, 256, 512};
  std::array<std::shared_ptr<nn::Sequential>, 4> built;
  for (size_t i = 0; i < 4; ++i) {
    const int64_t stride = i == 0 ? 1 : 2;
    built[i] = block == Block::Basic ? make_layer<BasicBlock>(inplanes, planes[i], layers[i], stride)
                                     : make_layer<Bottleneck>(inplanes, planes[i], layers[i], stride);
    register_module("layer" + std::to_string(i + 1), built[i]);
  }
  layer1 = built[0], layer2 = built[1], layer3 = built[2], layer4 = built[3];
  feature_dim_ = inplanes;
  if (num_classes_ > 0) fc = register_module("fc", std::make_shared<nn::Linear>(feature_dim_, num_classes_));

  for (auto& [name, m] : named_modules()) {
    if (auto* c = dynamic_cast<nn::Conv2d*>(m)) nn::init::kaiming_normal_(c->weight, "fan_out");
    if (!options.zero_init_residual) continue;
    if (auto* b = dynamic_cast<Bottleneck*>(m)) nn::init::zeros_(b->bn3->weight);
    if (auto* b = dynamic_cast<BasicBlock*>(m)) nn::init::zeros_(b->bn2->weight);
  }
}

Tensor ResNet::feature_map(const Tensor& x) const {
  Tensor y = relu(bn1->forward(conv1->forward(x)));
  y = max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  y = layer1->forward(y);
  y = layer2->forward(y);
  y = layer3->forward(y);
  return layer4->forward(y);
}

Tensor ResNet::classify(const Tensor& features) const { return fc ? fc->forward(features) : features; }

std::shared_ptr<ResNet> resnet18(ResNetOptions o) { return std::make_shared<ResNet>(ResNet::Block::Basic, std::array<int64_t, 4>{2, 2, 2, 2}, o); }
std::shared_ptr<ResNet> resnet34(ResNetOptions o) { return std::make_shared<ResNet>(ResNet::Block::Basic, std::array<int64_t, 4>{3, 4, 6, 3}, o); }
std::shared_ptr<ResNet> resnet50(ResNetOptions o) { return std::make_shared<ResNet>(ResNet::Block::Bottleneck, std::array<int64_t, 4>{3, 4, 6, 3}, o); }
std::shared_ptr<ResNet> resnet101(ResNetOptions o) { return std::make_shared<ResNet>(ResNet::Block::Bottleneck, std::array<int64_t, 4>{3, 4, 23, 3}, o); }
std::shared_ptr<ResNet> resnet152(ResNetOptions o) { return std::make_shared<ResNet>(ResNet::Block::Bottleneck, std::array<int64_t, 4>{3, 8, 36, 3}, o); }

}  // namespace pneuma::models
