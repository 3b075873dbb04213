#pragma once
// nn::Module: named parameters, buffers and children. Names join with '.', so a
// model built like torchvision's has exactly torchvision's state_dict keys.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace pneuma::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  // Parameters then buffers of each module, in registration order (as PyTorch).
  NamedTensors state_dict() const;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Moves every parameter and buffer to `device` in place, as torch's Module.to(device): the
  // tensors keep their identity (layers and optimizers built later see the moved data), only
  // their storage changes; gradients are dropped. A no-op for tensors already there.
  Module& to(const Device& device);
  // Lays every 4-d parameter and buffer out in `format` in place, as torch's
  // Module.to(memory_format=): conv weights become OHWI in memory for ChannelsLast; gradients are
  // dropped. Other tensors are left as they are.
  Module& to(MemoryFormat format);
  // Converts every floating parameter and buffer to `dtype` in place, as torch's Module.to(dtype)
  // (model.double()); integer buffers (num_batches_tracked) stay as they are; gradients are dropped.
  Module& to(DType dtype);
  // This module (named "") and every descendant, depth-first in registration order, as
  // torch's named_modules(): for per-layer settings such as keeping frozen BN in eval.
  std::vector<std::pair<std::string, Module*>> named_modules();

 protected:
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    children_.emplace_back(name, child);
    return child;
  }

 private:
  // Points an existing tensor (its identity kept) at new data (its dtype too); drops its gradient.
  static void replace_data(const Tensor& tensor, const Tensor& data);
  void collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const;
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace pneuma::nn
