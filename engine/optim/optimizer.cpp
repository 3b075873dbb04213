#include "engine/optim/optimizer.h"

#include <cmath>
#include <string>

#include "engine/cpu/parallel.h"
#include "engine/ops/checks.h"
#include "engine/optim/optimizer_cuda.h"
#include "kernels/optim/update_math.cuh"

namespace pneuma::optim {

namespace {
void check_parameters(const char* name, const std::vector<Tensor>& parameters) {
  for (const Tensor& p : parameters) {
    PNEUMA_CHECK(p.is_leaf() && p.requires_grad(), name, ": parameter ", p.str(),
                 " is not a leaf that requires grad");
    PNEUMA_CHECK(p.is_non_overlapping_and_dense(), name, ": parameter ", p.str(),
                 " is not dense (a view with gaps or an expanded tensor)");
    PNEUMA_CHECK(p.device() == parameters.front().device(), name, ": parameters on different devices (",
                 parameters.front().str(), " and ", p.str(), ")");
  }
}

bool on_cuda(const std::vector<Tensor>& parameters) {
  return !parameters.empty() && parameters.front().device().is_cuda();
}

// The gradient in the parameter's layout (autograd already gives it that layout), so the update
// loops walk both as flat arrays.
Tensor dense_grad(const Tensor& p) {
  Tensor g = p.grad();
  PNEUMA_CHECK(g.shape() == p.shape(), "optimizer: grad ", g.str(), " does not match parameter ", p.str());
  g = g.laid_out_like(p);
  PNEUMA_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(), "optimizer: grad ", g.str(),
               " does not match parameter ", p.str());
  return g;
}

// "exp_avg.12" -> ("exp_avg", 12); a name without a valid index throws.
std::pair<std::string, size_t> split_state_name(const char* optimizer, const std::string& name, size_t count) {
  const size_t dot = name.rfind('.');
  size_t index = 0, used = 0;
  bool ok = dot != std::string::npos && dot + 1 < name.size();
  if (ok) {
    try {
      index = std::stoul(name.substr(dot + 1), &used);
      ok = used == name.size() - dot - 1 && index < count;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  PNEUMA_CHECK(ok, optimizer, ": state tensor '", name, "' names no parameter index below ", count);
  return {name.substr(0, dot), index};
}

// A copy of `value` for the buffer of parameter `p`, which it must match in shape.
Tensor state_copy(const char* optimizer, const std::string& name, const Tensor& value, const Tensor& p) {
  PNEUMA_CHECK(value.shape() == p.shape(), optimizer, ": state tensor '", name, "' is ", value.str(),
               " but its parameter is ", p.str());
  return value.to(p.dtype()).to(p.device()).clone().laid_out_like(p);
}
}  // namespace

void Optimizer::load_state_tensors(const nn::NamedTensors& state) {
  PNEUMA_CHECK(state.empty(), "optimizer: this optimizer keeps no state, but ", state.size(),
               " state tensors were given (first '", state.front().first, "')");
}

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr) : parameters_(std::move(parameters)), lr_(lr) {}

void Optimizer::zero_grad() {
  for (const Tensor& p : parameters_) p.set_grad(Tensor());
}

SGD::SGD(std::vector<Tensor> parameters, SgdOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  check_parameters("SGD", parameters_);
  PNEUMA_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
               "SGD: nesterov momentum requires a momentum and zero dampening");
  momentum_buffers_.resize(parameters_.size());
}

void SGD::step() {
  if (on_cuda(parameters_)) return cuda::sgd_step(parameters_, momentum_buffers_, options_, lr_);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    if (!p.grad().defined()) continue;
    const Tensor g = dense_grad(p);
    const bool first = !momentum_buffers_[i].defined();
    if (options_.momentum != 0 && first) momentum_buffers_[i] = Tensor::zeros(p.shape(), p.dtype()).laid_out_like(p);
    dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
      T* w = p.data<T>();
      const T* gs = g.data<T>();
      T* buf = options_.momentum != 0 ? momentum_buffers_[i].data<T>() : nullptr;
      const kern::SgdHyper hyper{lr_, options_.weight_decay, options_.momentum, options_.dampening,
                                 options_.nesterov};
      // Elements are independent: splitting them over threads leaves every result bit-identical.
      cpu::parallel_for(p.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) kern::sgd_update(w[j], gs[j], buf ? buf + j : nullptr, first, hyper);
      });
    });
  }
}

nn::NamedTensors SGD::state_tensors() const {
  nn::NamedTensors out;
  for (size_t i = 0; i < momentum_buffers_.size(); ++i)
    if (momentum_buffers_[i].defined())
      out.emplace_back("momentum_buffer." + std::to_string(i), momentum_buffers_[i].clone());
  return out;
}

void SGD::load_state_tensors(const nn::NamedTensors& state) {
  std::vector<Tensor> buffers(parameters_.size());
  for (const auto& [name, value] : state) {
    const auto [kind, i] = split_state_name("SGD", name, parameters_.size());
    PNEUMA_CHECK(kind == "momentum_buffer", "SGD: unknown state tensor '", name, "'");
    buffers[i] = state_copy("SGD", name, value, parameters_[i]);
  }
  momentum_buffers_ = std::move(buffers);
}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  check_parameters(options.decoupled_weight_decay ? "AdamW" : "Adam", parameters_);
  exp_avg_.resize(parameters_.size());
  exp_avg_sq_.resize(parameters_.size());
}

void Adam::step() {
  ++steps_;
  if (on_cuda(parameters_)) return cuda::adam_step(parameters_, exp_avg_, exp_avg_sq_, options_, lr_, steps_);
  const kern::AdamHyper hyper = kern::adam_hyper(lr_, options_.beta1, options_.beta2, options_.eps,
                                                 options_.weight_decay, options_.decoupled_weight_decay, steps_);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    if (!p.grad().defined()) continue;
    const Tensor g = dense_grad(p);
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype()).laid_out_like(p);
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype()).laid_out_like(p);
    }
    dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
      T* w = p.data<T>();
      const T* gs = g.data<T>();
      T* m = exp_avg_[i].data<T>();
      T* v = exp_avg_sq_[i].data<T>();
      cpu::parallel_for(p.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) kern::adam_update(w[j], gs[j], m[j], v[j], hyper);
      });
    });
  }
}

nn::NamedTensors Adam::state_tensors() const {
  nn::NamedTensors out;
  out.emplace_back("step", Tensor::from_indices({steps_}, {1}));
  for (size_t i = 0; i < exp_avg_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    out.emplace_back("exp_avg." + std::to_string(i), exp_avg_[i].clone());
    out.emplace_back("exp_avg_sq." + std::to_string(i), exp_avg_sq_[i].clone());
  }
  return out;
}

void Adam::load_state_tensors(const nn::NamedTensors& state) {
  const char* name_of = options_.decoupled_weight_decay ? "AdamW" : "Adam";
  std::vector<Tensor> avg(parameters_.size()), avg_sq(parameters_.size());
  int64_t steps = 0;
  bool has_step = false;
  for (const auto& [name, value] : state) {
    if (name == "step") {
      PNEUMA_CHECK(value.numel() == 1, name_of, ": state tensor 'step' is ", value.str(), ", not one number");
      steps = value.to(DType::Int64).to_indices().at(0);
      has_step = true;
      continue;
    }
    const auto [kind, i] = split_state_name(name_of, name, parameters_.size());
    if (kind == "exp_avg") avg[i] = state_copy(name_of, name, value, parameters_[i]);
    else if (kind == "exp_avg_sq") avg_sq[i] = state_copy(name_of, name, value, parameters_[i]);
    else PNEUMA_FAIL(name_of, ": unknown state tensor '", name, "'");
  }
  PNEUMA_CHECK(has_step || state.empty(), name_of, ": the state has no 'step' count");
  for (size_t i = 0; i < parameters_.size(); ++i)
    PNEUMA_CHECK(avg[i].defined() == avg_sq[i].defined(), name_of, ": parameter ", i,
                 " has only one of exp_avg and exp_avg_sq in the state");
  exp_avg_ = std::move(avg);
  exp_avg_sq_ = std::move(avg_sq);
  steps_ = steps;
}

}  // namespace pneuma::optim
