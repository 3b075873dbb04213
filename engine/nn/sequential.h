#pragma once
// nn::Sequential: children run in order, named "0", "1", ... as torch.nn.Sequential, or
// by explicit names as Sequential(OrderedDict(...)). Parameterless layers (ReLU, pooling)
// are children too, so indices match PyTorch's and state_dict keys agree.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace pneuma::nn {

class Sequential : public Module {
 public:
  // Any module with `Tensor forward(const Tensor&) const`.
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> module) {
    return add(std::to_string(steps_.size()), std::move(module));
  }
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> module) {
    register_module(name, module);
    const M* raw = module.get();
    steps_.push_back({name, module, [raw](const Tensor& x) { return raw->forward(x); }});
    return module;
  }

  Tensor forward(const Tensor& x) const;
  size_t size() const { return steps_.size(); }
  const std::string& name_at(size_t i) const { return steps_.at(i).name; }
  // The i-th child as M (nullptr when it is another type).
  template <class M>
  std::shared_ptr<M> at(size_t i) const {
    return std::dynamic_pointer_cast<M>(steps_.at(i).module);
  }

 private:
  struct Step {
    std::string name;
    std::shared_ptr<Module> module;
    std::function<Tensor(const Tensor&)> forward;
  };
  std::vector<Step> steps_;
};

}  // namespace pneuma::nn
