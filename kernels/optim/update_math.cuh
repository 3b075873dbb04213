#pragma once
// Per-element parameter updates of the optimizers (torch.optim semantics), written once for the
// CPU optimizer loops (engine/optim/optimizer.cpp) and the fused CUDA kernels
// (kernels/optim/fused_update.cuh). The arithmetic runs in double whatever the parameter's dtype,
// and each stored value is rounded to it, exactly as the CPU loops always did.
#include <cmath>

#if defined(__CUDACC__)
#define PNEUMA_OPTIM_HD __host__ __device__ inline
#else
#define PNEUMA_OPTIM_HD inline
#endif

namespace pneuma::kern {

struct SgdHyper {
  double lr = 0;
  double weight_decay = 0;
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
};

// One element of an SGD step. buffer: the momentum buffer's element, nullptr without momentum;
// first: the buffer was created for this step (torch copies the first update into it).
template <class T>
PNEUMA_OPTIM_HD void sgd_update(T& weight, T grad, T* buffer, bool first, const SgdHyper& h) {
  double d = grad + h.weight_decay * weight;
  if (buffer != nullptr) {
    *buffer = static_cast<T>(first ? d : h.momentum * *buffer + (1 - h.dampening) * d);
    d = h.nesterov ? d + h.momentum * *buffer : *buffer;
  }
  weight = static_cast<T>(weight - h.lr * d);
}

struct AdamHyper {
  double lr = 0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled_weight_decay = false;  // AdamW
  double step_size = 0;                 // lr / (1 - beta1^step)
  double sqrt_bias_correction2 = 1;     // sqrt(1 - beta2^step)
};

// The step-dependent terms of an Adam update, computed once per step on the host.
inline AdamHyper adam_hyper(double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
                            long long step) {
  AdamHyper h;
  h.lr = lr;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.decoupled_weight_decay = decoupled;
  h.step_size = lr / (1 - std::pow(beta1, static_cast<double>(step)));
  h.sqrt_bias_correction2 = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
  return h;
}

// One element of an Adam/AdamW step: exp_avg m, exp_avg_sq v.
template <class T>
PNEUMA_OPTIM_HD void adam_update(T& weight, T grad_in, T& m, T& v, const AdamHyper& h) {
  using std::sqrt;
  double grad = grad_in;
  if (h.decoupled_weight_decay) weight = static_cast<T>(weight * (1 - h.lr * h.weight_decay));
  else grad += h.weight_decay * weight;
  m = static_cast<T>(h.beta1 * m + (1 - h.beta1) * grad);
  v = static_cast<T>(h.beta2 * v + (1 - h.beta2) * grad * grad);
  const double denom = sqrt(static_cast<double>(v)) / h.sqrt_bias_correction2 + h.eps;
  weight = static_cast<T>(weight - h.step_size * m / denom);
}

}  // namespace pneuma::kern
