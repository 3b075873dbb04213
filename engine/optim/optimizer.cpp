#include "engine/optim/optimizer.h"

#include <cmath>

#include "engine/ops/checks.h"

namespace pneuma::optim {

namespace {
void check_parameters(const char* name, const std::vector<Tensor>& parameters) {
  for (const Tensor& p : parameters) {
    PNEUMA_CHECK(p.is_leaf() && p.requires_grad(), name, ": parameter ", p.str(),
                 " is not a leaf that requires grad");
    PNEUMA_CHECK(p.is_contiguous(), name, ": parameter ", p.str(), " is not contiguous");
    ops::require_cpu(name, {&p});
  }
}

// The gradient as a contiguous tensor of the parameter's dtype (a view otherwise).
Tensor dense_grad(const Tensor& p) {
  Tensor g = p.grad().contiguous();
  PNEUMA_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(), "optimizer: grad ", g.str(),
               " does not match parameter ", p.str());
  return g;
}
}  // namespace

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
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    if (!p.grad().defined()) continue;
    const Tensor g = dense_grad(p);
    const bool first = !momentum_buffers_[i].defined();
    if (options_.momentum != 0 && first) momentum_buffers_[i] = Tensor::zeros(p.shape(), p.dtype());
    dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
      T* w = p.data<T>();
      const T* gs = g.data<T>();
      T* buf = options_.momentum != 0 ? momentum_buffers_[i].data<T>() : nullptr;
      const double lr = lr_, wd = options_.weight_decay, mom = options_.momentum, damp = options_.dampening;
      for (int64_t j = 0; j < p.numel(); ++j) {
        double d = gs[j] + wd * w[j];
        if (buf != nullptr) {
          buf[j] = static_cast<T>(first ? d : mom * buf[j] + (1 - damp) * d);  // torch: first step copies d
          d = options_.nesterov ? d + mom * buf[j] : buf[j];
        }
        w[j] = static_cast<T>(w[j] - lr * d);
      }
    });
  }
}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Optimizer(std::move(parameters), options.lr), options_(options) {
  check_parameters(options.decoupled_weight_decay ? "AdamW" : "Adam", parameters_);
  exp_avg_.resize(parameters_.size());
  exp_avg_sq_.resize(parameters_.size());
}

void Adam::step() {
  ++steps_;
  const double bias1 = 1 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2 = 1 - std::pow(options_.beta2, static_cast<double>(steps_));
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    if (!p.grad().defined()) continue;
    const Tensor g = dense_grad(p);
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype());
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype());
    }
    dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
      T* w = p.data<T>();
      const T* gs = g.data<T>();
      T* m = exp_avg_[i].data<T>();
      T* v = exp_avg_sq_[i].data<T>();
      const double lr = lr_, b1 = options_.beta1, b2 = options_.beta2, wd = options_.weight_decay;
      const double step_size = lr / bias1, sqrt_bias2 = std::sqrt(bias2);
      for (int64_t j = 0; j < p.numel(); ++j) {
        double grad = gs[j];
        if (options_.decoupled_weight_decay) w[j] = static_cast<T>(w[j] * (1 - lr * wd));
        else grad += wd * w[j];
        m[j] = static_cast<T>(b1 * m[j] + (1 - b1) * grad);
        v[j] = static_cast<T>(b2 * v[j] + (1 - b2) * grad * grad);
        const double denom = std::sqrt(static_cast<double>(v[j])) / sqrt_bias2 + options_.eps;
        w[j] = static_cast<T>(w[j] - step_size * m[j] / denom);
      }
    });
  }
}

}  // namespace pneuma::optim
