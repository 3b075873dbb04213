#include "models/simple_cnn.h"

#include "engine/nn/init.h"

namespace pneuma::models {

SimpleCnn::SimpleCnn(SimpleCnnOptions o) {
  PNEUMA_CHECK(!o.channels.empty(), "SimpleCnn: needs at least one conv block");
  PNEUMA_CHECK(o.num_classes >= 0 && o.hidden >= 0, "SimpleCnn: num_classes ", o.num_classes, " and hidden ",
               o.hidden, " must be >= 0");
  num_classes_ = o.num_classes;
  features = register_module("features", std::make_shared<nn::Sequential>());
  int64_t in = o.in_channels;
  for (int64_t out : o.channels) {
    nn::Conv2d::Options c;
    c.padding = {1, 1};
    c.bias = false;
    auto conv = features->add(std::make_shared<nn::Conv2d>(in, out, std::array<int64_t, 2>{3, 3}, c));
    nn::init::kaiming_normal_(conv->weight, "fan_out");
    features->add(std::make_shared<nn::BatchNorm2d>(out));
    features->add(std::make_shared<nn::ReLU>());
    features->add(std::make_shared<nn::MaxPool2d>(std::array<int64_t, 2>{2, 2}));
    in = out;
  }
  feature_dim_ = in;
  if (num_classes_ == 0) return;
  classifier = register_module("classifier", std::make_shared<nn::Sequential>());
  if (o.hidden > 0) {
    classifier->add(std::make_shared<nn::Linear>(in, o.hidden));
    classifier->add(std::make_shared<nn::ReLU>());
    classifier->add(std::make_shared<nn::Dropout>(o.dropout));
    in = o.hidden;
  }
  classifier->add(std::make_shared<nn::Linear>(in, num_classes_));
}

}  // namespace pneuma::models
