#include "engine/train/optimizer_factory.h"

#include "engine/core/error.h"

namespace pneuma::train {

std::vector<std::string> optimizer_names() { return {"sgd", "adam", "adamw"}; }

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params, double lr,
                                                 double weight_decay, double momentum) {
  std::vector<Tensor> trainable;
  for (Tensor& p : params)
    if (p.requires_grad()) trainable.push_back(std::move(p));
  PNEUMA_CHECK(!trainable.empty(), "optimizer ", name, ": no trainable parameters (all frozen?)");
  PNEUMA_CHECK(lr > 0, "optimizer ", name, ": learning rate ", lr, " <= 0");
  PNEUMA_CHECK(weight_decay >= 0, "optimizer ", name, ": weight decay ", weight_decay, " < 0");
  if (name == "sgd") {
    optim::SgdOptions o;
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    return std::make_unique<optim::SGD>(std::move(trainable), o);
  }
  if (name == "adam" || name == "adamw") {
    optim::AdamOptions o;
    o.lr = lr;
    o.weight_decay = weight_decay;
    o.decoupled_weight_decay = name == "adamw";
    return std::make_unique<optim::Adam>(std::move(trainable), o);
  }
  PNEUMA_FAIL("unknown optimizer '", name, "' (sgd, adam, adamw)");
}

}  // namespace pneuma::train
