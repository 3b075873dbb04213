#include "models/freeze.h"

#include "engine/nn/layers.h"

namespace pneuma::models {

bool matches_prefix(const std::string& name, const std::string& prefix) {
  if (prefix.empty()) return true;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || prefix.back() == '.' || name[prefix.size()] == '.';
}

namespace {
std::vector<std::string> set_requires_grad(nn::Module& module, const std::vector<std::string>& prefixes, bool value,
                                           bool all_when_empty, const char* op) {
  std::vector<std::string> changed;
  std::vector<bool> used(prefixes.size(), false);
  for (auto& [name, p] : module.named_parameters()) {
    bool hit = all_when_empty && prefixes.empty();
    for (size_t i = 0; i < prefixes.size(); ++i)
      if (matches_prefix(name, prefixes[i])) hit = used[i] = true;
    if (!hit) continue;
    p.set_requires_grad(value);
    if (!value) p.set_grad(Tensor());
    changed.push_back(name);
  }
  for (size_t i = 0; i < prefixes.size(); ++i)
    PNEUMA_CHECK(used[i], op, ": prefix '", prefixes[i], "' matches no parameter name");
  return changed;
}
}  // namespace

std::vector<std::string> freeze(nn::Module& module, const std::vector<std::string>& prefixes) {
  return set_requires_grad(module, prefixes, false, false, "freeze");
}

std::vector<std::string> unfreeze(nn::Module& module, const std::vector<std::string>& prefixes) {
  return set_requires_grad(module, prefixes, true, true, "unfreeze");
}

void set_training(nn::Module& module, bool on, bool frozen_bn_eval) {
  module.train(on);
  if (!on || !frozen_bn_eval) return;
  for (auto& [name, m] : module.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (!bn) continue;
    const bool frozen = (!bn->weight.defined() || !bn->weight.requires_grad()) &&
                        (!bn->bias.defined() || !bn->bias.requires_grad());
    if (frozen) bn->eval();
  }
}

}  // namespace pneuma::models
