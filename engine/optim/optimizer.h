#pragma once
// Optimizers over a list of parameters, as torch.optim. step() reads each
// parameter's .grad (parameters without one are skipped) and updates in place.
#include <vector>

#include "engine/core/tensor.h"
#include "engine/nn/module.h"

namespace pneuma::optim {

class Optimizer {
 public:
  Optimizer(std::vector<Tensor> parameters, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();  // set_to_none, PyTorch's default
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  const std::vector<Tensor>& parameters() const { return parameters_; }

  // The optimizer's per-parameter state, to save and resume a run exactly: names carry
  // the parameter's index in parameters() ("momentum_buffer.3", "exp_avg.0", ...), and
  // tensors are copies. load_state_tensors takes what state_tensors returned (buffers not
  // yet created are absent) and throws on an unknown name, index or shape.
  virtual nn::NamedTensors state_tensors() const { return {}; }
  virtual void load_state_tensors(const nn::NamedTensors& state);

 protected:
  std::vector<Tensor> parameters_;
  double lr_;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

class SGD final : public Optimizer {
 public:
  SGD(std::vector<Tensor> parameters, SgdOptions options);
  void step() override;
  nn::NamedTensors state_tensors() const override;
  void load_state_tensors(const nn::NamedTensors& state) override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_buffers_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam final : public Optimizer {
 public:
  Adam(std::vector<Tensor> parameters, AdamOptions options);
  void step() override;
  // exp_avg.<i>, exp_avg_sq.<i> and "step" (int64 [1], the step count).
  nn::NamedTensors state_tensors() const override;
  void load_state_tensors(const nn::NamedTensors& state) override;

 private:
  AdamOptions options_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// torch.optim.AdamW defaults: weight decay 1e-2, decoupled.
inline AdamOptions adamw_options(double lr = 1e-3, double weight_decay = 1e-2) {
  AdamOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.decoupled_weight_decay = true;
  return o;
}

}  // namespace pneuma::optim
