#pragma once
// Optimizers by name for the training tools.
#include <memory>
#include <string>
#include <vector>

#include "engine/optim/optimizer.h"

namespace pneuma::train {

// "sgd": SGD with `momentum` (0.9 by default for the training tools, as the seeds'
// recipes; no nesterov) and L2 weight decay; "adam": Adam with L2 weight decay (torch
// Adam); "adamw": decoupled weight decay (torch AdamW). Betas 0.9/0.999, eps 1e-8.
// Parameters that do not require grad (frozen) are left out. Unknown name: Error.
std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params, double lr,
                                                 double weight_decay, double momentum = 0.9);
std::vector<std::string> optimizer_names();

}  // namespace pneuma::train
