#pragma once
// Freezing by parameter-name prefix (e.g. "features.denseblock1", "layer1", "conv1"): a
// prefix matches a name equal to it or continuing with '.', so "layer1" does not match
// "layer10". Frozen parameters get requires_grad(false), receive no gradient and are
// skipped by the optimizers.
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace pneuma::models {

bool matches_prefix(const std::string& name, const std::string& prefix);

// Returns the names frozen; a prefix that matches no parameter is an error (a typo would
// otherwise silently train everything).
std::vector<std::string> freeze(nn::Module& module, const std::vector<std::string>& prefixes);
// Empty prefixes: every parameter.
std::vector<std::string> unfreeze(nn::Module& module, const std::vector<std::string>& prefixes = {});

// module.train(on); then, with frozen_bn_eval, every BatchNorm whose parameters are all
// frozen goes back to eval: it normalizes with its running statistics and leaves them
// (and num_batches_tracked) unchanged, as a frozen pretrained layer should.
void set_training(nn::Module& module, bool on, bool frozen_bn_eval = true);

}  // namespace pneuma::models
