#include <doctest/doctest.h>

#include <set>

#include "engine/core/generator.h"
#include "engine/pneuma.h"
#include "models/models.h"

using namespace pneuma;

namespace {

int64_t parameter_total(const nn::Module& m) {
  int64_t n = 0;
  for (const auto& [name, p] : m.named_parameters()) n += p.numel();
  return n;
}

bool has_key(const nn::Module& m, const std::string& key, const Shape& shape) {
  for (const auto& [name, t] : m.state_dict())
    if (name == key) return t.shape() == shape;
  return false;
}

}  // namespace

// The 1000-class totals and ResNet-101 are checked through pneuma-inspect (test_tools.cpp).
TEST_CASE("model parameter totals equal torchvision's") {
  struct Row {
    std::string name;
    int64_t classes, total;
  };
  for (const Row& r : std::vector<Row>{{"resnet18", 1, 11177025}, {"resnet50", 1, 23510081}, {"densenet161", 1, 26474209}}) {
    INFO(r.name, " with ", r.classes, " classes");
    CHECK(parameter_total(*models::create_model(r.name, r.classes)) == r.total);
  }
}

TEST_CASE("model state_dict keys follow torchvision") {
  const auto r50 = models::create_classifier("resnet50", 2);
  CHECK(r50->state_dict().size() == 320);  // len(torchvision.models.resnet50().state_dict())
  CHECK(r50->state_dict().front().first == "conv1.weight");
  CHECK(r50->state_dict().back().first == "fc.bias");
  CHECK(has_key(*r50, "layer1.0.downsample.0.weight", {256, 64, 1, 1}));
  CHECK(has_key(*r50, "layer4.2.bn3.num_batches_tracked", {}));
  CHECK(has_key(*r50, "layer2.0.conv2.weight", {128, 128, 3, 3}));  // v1.5: stride on the 3x3
  CHECK(has_key(*r50, "fc.weight", {2, 2048}));
  CHECK(r50->feature_dim() == 2048);
  const auto d161 = models::create_classifier("densenet161", 1);
  CHECK(d161->state_dict().size() == 967);  // len(torchvision.models.densenet161().state_dict())
  CHECK(has_key(*d161, "features.denseblock1.denselayer1.norm1.running_mean", {96}));
  CHECK(has_key(*d161, "features.denseblock3.denselayer36.conv2.weight", {48, 192, 3, 3}));
  CHECK(has_key(*d161, "features.transition3.conv.weight", {1056, 2112, 1, 1}));
  CHECK(has_key(*d161, "features.norm5.num_batches_tracked", {}));
  CHECK(has_key(*d161, "classifier.weight", {1, 2208}));
  CHECK(d161->feature_dim() == 2208);
  const auto backbone = models::create_classifier("resnet18", 0);
  for (const auto& [name, t] : backbone->state_dict()) CHECK(name.rfind("fc.", 0) != 0);
  // unique names everywhere
  for (const char* name : {"threebranch-resnet18", "unet", "simplecnn"}) {
    std::set<std::string> seen;
    for (const auto& [key, t] : models::create_model(name, 1)->state_dict()) CHECK(seen.insert(key).second);
  }
}

TEST_CASE("model forward shapes: classifiers - backbones - U-Net at odd sizes - three-branch") {
  NoGradGuard no_grad;
  const Tensor x = Tensor::randn({2, 3, 40, 40}, 1);
  for (const char* name : {"simplecnn", "resnet18", "resnet50", "densenet121"}) {
    INFO(name);
    const auto m = models::create_classifier(name, 3);
    m->eval();
    CHECK(m->forward(x).shape() == Shape{2, 3});
    const Tensor fm = m->feature_map(x);
    CHECK(fm.size(1) == m->feature_dim());
    CHECK(m->features(x).shape() == Shape{2, m->feature_dim()});
  }
  CHECK(models::create_classifier("resnet18", 0)->forward(x).shape() == Shape{2, 512});
  for (bool bilinear : {false, true}) {
    models::UNetOptions o;
    o.base_width = 4;
    o.bilinear = bilinear;
    o.out_channels = 2;
    models::UNet unet(o);
    CHECK(unet.forward(Tensor::randn({1, 1, 37, 50}, 2)).shape() == Shape{1, 2, 37, 50});
    CHECK_THROWS_WITH_AS(unet.forward(Tensor::randn({1, 3, 32, 32}, 2)), doctest::Contains("UNet: expected input"), Error);
  }
  models::ThreeBranchOptions o;
  o.backbone = "resnet18";
  o.num_classes = 2;
  o.projection = {64, 16};
  models::ThreeBranch tb(o);
  tb.eval();
  const models::BranchOutput out = tb.forward(models::Branch::Adult, x);
  CHECK(out.features.shape() == Shape{2, 512});
  CHECK(out.embedding.shape() == Shape{2, 16});
  CHECK(out.logits.shape() == Shape{2, 2});
  CHECK(has_key(tb, "adult.projection.2.weight", {16, 64}));
  CHECK(has_key(tb, "common.classifier.weight", {2, 512}));
  CHECK(has_key(tb, "pediatric.backbone.layer4.1.bn2.running_var", {512}));
  CHECK(models::forward_any(tb, x).to_vector() == tb.common->forward(x).logits.to_vector());
}

TEST_CASE("heads: projection widths - BN and bias - MLP classifier layout") {
  models::ProjectionHeadOptions p;
  p.widths = {2048, 4096, 4096, 256};
  models::ProjectionHead head(p);
  std::vector<std::string> keys;
  for (const auto& [name, t] : head.named_parameters()) keys.push_back(name);
  CHECK(keys == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "3.weight", "4.weight", "4.bias",
                                         "6.weight", "6.bias"});
  p.widths = {2048, 2048, 128};
  p.batch_norm = false;
  models::ProjectionHead plain(p);
  CHECK(plain.size() == 3);
  CHECK(has_key(plain, "0.bias", {2048}));
  CHECK(has_key(plain, "2.weight", {128, 2048}));
  models::MlpClassifier mlp;
  CHECK(has_key(mlp, "0.weight", {512, 2048}));
  CHECK(has_key(mlp, "3.weight", {128, 512}));
  CHECK(has_key(mlp, "6.weight", {3, 128}));
  NoGradGuard no_grad;
  mlp.eval();
  CHECK(mlp.forward(Tensor::randn({5, 2048}, 1)).shape() == Shape{5, 3});
  CHECK_THROWS_AS(models::ProjectionHead(models::ProjectionHeadOptions{{8}, true}), Error);
}

TEST_CASE("resnet init: kaiming fan_out convs - BN 1/0 - zero-init residual") {
  manual_seed(7);
  models::ResNetOptions o;
  o.zero_init_residual = true;
  const auto r = models::resnet50(o);
  for (const auto& [name, t] : r->named_parameters()) {
    if (name.find("bn3.weight") != std::string::npos) {
      for (double v : t.to_vector()) REQUIRE(v == 0);
    } else if (name.find("bn1.weight") != std::string::npos) {
      for (double v : t.to_vector()) REQUIRE(v == 1);
    }
  }
  // std of layer3.0.conv2 weight ~ sqrt(2 / (256 * 9))
  const std::vector<double> w = r->layer3->at<models::Bottleneck>(0)->conv2->weight.to_vector();
  double s = 0;
  for (double v : w) s += v * v;
  CHECK(std::sqrt(s / static_cast<double>(w.size())) == doctest::Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.02));
  const auto r18 = models::resnet18(o);
  for (double v : r18->layer1->at<models::BasicBlock>(1)->bn2->weight.to_vector()) CHECK(v == 0);
}

TEST_CASE("registry: unknown names and bad class counts are errors") {
  CHECK_THROWS_WITH_AS(models::create_model("resnet19", 1), doctest::Contains("unknown model 'resnet19'"), Error);
  CHECK_THROWS_WITH_AS(models::create_model("threebranch-vgg", 1), doctest::Contains("unknown model 'vgg'"), Error);
  CHECK_THROWS_AS(models::create_model("unet", 0), Error);
  CHECK_THROWS_AS(models::create_classifier("resnet18", -1), Error);
  CHECK(models::create_model("unet-bilinear", 1)->state_dict().size() > 0);
}

TEST_CASE("freezing by prefix: no gradients - frozen BN stays in eval") {
  models::ResNetOptions options;
  options.num_classes = 1;
  const auto m = models::resnet18(options);
  CHECK(models::matches_prefix("layer1.0.conv1.weight", "layer1"));
  CHECK(!models::matches_prefix("layer10.weight", "layer1"));
  CHECK(models::matches_prefix("layer1.0.conv1.weight", "layer1.0."));
  const std::vector<std::string> frozen = models::freeze(*m, {"conv1", "bn1", "layer1"});
  CHECK(frozen.size() == 15);  // conv1.weight, bn1.{weight,bias}, 2 blocks x 6 in layer1
  CHECK_THROWS_WITH_AS(models::freeze(*m, {"layer9"}), doctest::Contains("prefix 'layer9' matches no parameter"), Error);

  models::set_training(*m, true);
  const auto block = m->layer1->at<models::BasicBlock>(0);
  CHECK(!m->bn1->is_training());
  CHECK(!block->bn1->is_training());
  CHECK(m->layer2->at<models::BasicBlock>(0)->bn1->is_training());
  const std::vector<double> mean_before = block->bn1->running_mean.to_vector();
  const Tensor x = Tensor::randn({2, 3, 32, 32}, 3);
  sum(m->forward(x)).backward();
  CHECK(block->bn1->running_mean.to_vector() == mean_before);
  CHECK(block->bn1->num_batches_tracked.item() == 0);
  CHECK(m->layer2->at<models::BasicBlock>(0)->bn1->num_batches_tracked.item() == 1);
  CHECK(!m->conv1->weight.grad().defined());
  CHECK(!block->conv1->weight.grad().defined());
  CHECK(m->layer2->at<models::BasicBlock>(0)->conv1->weight.grad().defined());
  CHECK(m->fc->weight.grad().defined());

  const auto dense = models::create_classifier("densenet121", 1);
  CHECK(models::freeze(*dense, {"features.denseblock1"}).size() == 6 * 6);  // 6 layers x (2 convs + 2 BN x 2)
  CHECK(dense->named_parameters().front().second.requires_grad());  // features.conv0 stays trainable

  models::set_training(*m, true, /*frozen_bn_eval=*/false);
  CHECK(block->bn1->is_training());
  CHECK(models::unfreeze(*m).size() == m->named_parameters().size());
  models::set_training(*m, true);
  CHECK(block->bn1->is_training());
}
