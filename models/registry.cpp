#include "models/registry.h"

#include <functional>
#include <map>

#include "models/densenet.h"
#include "models/resnet.h"
#include "models/simple_cnn.h"
#include "models/three_branch.h"
#include "models/unet.h"

namespace pneuma::models {

namespace {

using Factory = std::function<std::shared_ptr<ImageClassifier>(int64_t)>;

const std::map<std::string, Factory>& classifiers() {
  static const std::map<std::string, Factory> table = [] {
    auto resnet = [](auto fn) {
      return [fn](int64_t c) -> std::shared_ptr<ImageClassifier> {
        ResNetOptions o;
        o.num_classes = c;
        return fn(o);
      };
    };
    auto densenet = [](auto fn) { return [fn](int64_t c) -> std::shared_ptr<ImageClassifier> { return fn(c); }; };
    std::map<std::string, Factory> t;
    t["simplecnn"] = [](int64_t c) -> std::shared_ptr<ImageClassifier> {
      SimpleCnnOptions o;
      o.num_classes = c;
      return std::make_shared<SimpleCnn>(o);
    };
    t["resnet18"] = resnet(resnet18);
    t["resnet34"] = resnet(resnet34);
    t["resnet50"] = resnet(resnet50);
    t["resnet101"] = resnet(resnet101);
    t["resnet152"] = resnet(resnet152);
    t["densenet121"] = densenet(densenet121);
    t["densenet161"] = densenet(densenet161);
    t["densenet169"] = densenet(densenet169);
    t["densenet201"] = densenet(densenet201);
    return t;
  }();
  return table;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

}  // namespace

std::vector<std::string> classifier_names() {
  std::vector<std::string> out;
  for (const auto& [name, f] : classifiers()) out.push_back(name);
  return out;
}

std::vector<std::string> model_names() {
  std::vector<std::string> out = classifier_names();
  out.insert(out.end(), {"unet", "unet-bilinear", "threebranch", "threebranch-<classifier>"});
  return out;
}

std::shared_ptr<ImageClassifier> create_classifier(const std::string& name, int64_t num_classes) {
  const auto it = classifiers().find(name);
  PNEUMA_CHECK(it != classifiers().end(), "unknown model '", name, "' (known: ", joined(classifier_names()), ")");
  PNEUMA_CHECK(num_classes >= 0, name, ": number of classes must be >= 0, got ", num_classes);
  return it->second(num_classes);
}

std::shared_ptr<nn::Module> create_model(const std::string& name, int64_t num_classes) {
  if (name == "unet" || name == "unet-bilinear") {
    PNEUMA_CHECK(num_classes > 0, name, ": number of mask channels must be positive, got ", num_classes);
    UNetOptions o;
    o.out_channels = num_classes;
    o.bilinear = name == "unet-bilinear";
    return std::make_shared<UNet>(o);
  }
  if (name == "threebranch" || name.rfind("threebranch-", 0) == 0) {
    ThreeBranchOptions o;
    o.num_classes = num_classes;
    if (name != "threebranch") o.backbone = name.substr(std::string("threebranch-").size());
    return std::make_shared<ThreeBranch>(o);
  }
  if (!classifiers().count(name))
    PNEUMA_FAIL("unknown model '", name, "' (known: ", joined(model_names()), ")");
  return create_classifier(name, num_classes);
}

Tensor forward_any(const nn::Module& model, const Tensor& x) {
  if (const auto* c = dynamic_cast<const ImageClassifier*>(&model)) return c->forward(x);
  if (const auto* u = dynamic_cast<const UNet*>(&model)) return u->forward(x);
  if (const auto* t = dynamic_cast<const ThreeBranch*>(&model)) return t->forward(x);
  PNEUMA_FAIL("forward_any: the model is not one of the registry's");
}

}  // namespace pneuma::models
