#include "engine/nn/module.h"

namespace pneuma::nn {

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  if (value.defined()) value.set_requires_grad(true);
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.emplace_back(name, value);
  return value;
}

void Module::collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const {
  // Own tensors in PyTorch's order: parameters, then buffers, then each child's.
  if (parameters)
    for (const auto& [name, t] : parameters_)
      if (t.defined()) out.emplace_back(prefix + name, t);
  if (buffers)
    for (const auto& [name, t] : buffers_)
      if (t.defined()) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

void Module::collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out) {
  out.emplace_back(prefix, this);
  for (auto& [name, child] : children_) child->collect_modules(prefix.empty() ? name : prefix + "." + name, out);
}

Module& Module::to(const Device& device) {
  for (const auto& [name, tensor] : state_dict()) {
    if (tensor.device() == device) continue;
    replace_data(tensor, tensor.detach().to(device));
  }
  return *this;
}

Module& Module::to(MemoryFormat format) {
  PNEUMA_CHECK(format != MemoryFormat::Preserve, "Module.to: preserve_format is not a layout to convert to");
  for (const auto& [name, tensor] : state_dict()) {
    if (tensor.dim() != 4 || tensor.is_contiguous(format)) continue;
    replace_data(tensor, tensor.detach().contiguous(format));
  }
  return *this;
}

Module& Module::to(DType dtype) {
  PNEUMA_CHECK(is_floating(dtype), "Module.to: ", dtype_name(dtype), " is not a floating dtype");
  for (const auto& [name, tensor] : state_dict()) {
    if (!is_floating(tensor.dtype()) || tensor.dtype() == dtype) continue;
    replace_data(tensor, tensor.detach().to(dtype));
  }
  return *this;
}

void Module::replace_data(const Tensor& tensor, const Tensor& data) {
  TensorImpl& impl = tensor.impl();
  impl.storage = data.storage();
  impl.offset = data.offset();
  impl.strides = data.strides();
  impl.dtype = data.dtype();
  impl.grad.reset();
}

void Module::zero_grad() {
  for (const Tensor& p : parameters()) p.set_grad(Tensor());
}

}  // namespace pneuma::nn
