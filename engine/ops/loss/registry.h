#pragma once
// The losses by name, for tools and configs that pick a loss at run time ("focal", "nt_xent",
// ...): each entry lists its tensor arguments and its options with their defaults, and calls
// the functional API in engine/ops/loss/loss.h.
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma {

// Option name -> value as text ("0.25", "mean", "true", "-100").
using LossOptions = std::map<std::string, std::string>;

struct LossSpec {
  std::string name;
  std::string summary;
  // Tensor arguments in call order; a trailing '?' marks an optional one (may be left out at
  // the end of the list or passed as an undefined Tensor).
  std::vector<std::string> inputs;
  LossOptions defaults;  // every option the loss takes
  // Called with the defaults merged in.
  std::function<Tensor(const std::vector<Tensor>&, const LossOptions&)> fn;
};

const std::vector<LossSpec>& loss_registry();
// Throws naming the unknown loss and listing the known ones.
const LossSpec& find_loss(std::string_view name);
// Checks the number of tensors and the option names (an unknown option is an error, so a typo
// never silently falls back to a default), then computes the loss.
Tensor compute_loss(std::string_view name, const std::vector<Tensor>& inputs, const LossOptions& options = {});

}  // namespace pneuma
