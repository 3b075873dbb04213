#include "engine/train/clip.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "engine/autograd/grad_mode.h"
#include "engine/core/error.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/elementwise/elementwise_cuda.h"
#include "engine/ops/index/index.h"
#include "engine/ops/reduce/minmax.h"
#include "engine/ops/reduce/reduce.h"

namespace pneuma::train {

namespace {

// The inf-norm's maximum lets NaN through, as torch.linalg.vector_norm does (std::max would drop
// a NaN that comes second).
double max_or_nan(double a, double b) { return (b > a || std::isnan(b)) ? b : a; }

// The gradient itself where its elements fill one block (row-major or channels-last: the norm and
// the scaling are per element, so memory order does not matter), else a contiguous copy.
Tensor flat_walkable(const Tensor& g) { return g.is_non_overlapping_and_dense() ? g : g.contiguous(); }

// One gradient's share of the total on the CPU: sum |g|^p, or max |g| for the inf-norm, in double.
double host_norm_term(const Tensor& g, double norm_type, bool inf_norm) {
  const Tensor dense = flat_walkable(g);
  double norm = 0;
  dispatch_floating(dense.dtype(), "clip_grad_norm", [&]<class T>() {
    const T* d = dense.data<T>();
    for (int64_t i = 0; i < dense.numel(); ++i) {
      const double v = std::abs(static_cast<double>(d[i]));
      if (inf_norm)
        norm = max_or_nan(norm, v);
      else if (norm_type == 2.0)
        norm += v * v;
      else
        norm += std::pow(v, norm_type);
    }
  });
  return norm;
}

// The same share of a CUDA gradient, as a 0-d float64 tensor left on its device: the engine's CUDA
// ops in double (as the CPU loop accumulates), nothing read back yet.
Tensor device_norm_term(const Tensor& g, double norm_type, bool inf_norm) {
  const Tensor v = abs(g.to(DType::Float64));
  if (inf_norm) return max(v);
  if (norm_type == 2.0) return sum(mul(v, v));
  return sum(pow(v, norm_type));
}

// g *= coefficient in place, as the CPU loop below does (x * T(coefficient)).
void scale_on_device(const Tensor& g, double coefficient) {
  cuda::unary_forward(kern::UnaryOp::MulScalar, g, g, kern::UnaryParams{coefficient, 0, true, false});
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  PNEUMA_CHECK(norm_type > 0, "clip_grad_norm: norm type ", norm_type, " <= 0");
  const bool inf_norm = std::isinf(norm_type);
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;

  // torch: the norm of the per-parameter norms; accumulated in double here. CUDA gradients'
  // terms stay on their device until one read per device of their combined sum (or maximum):
  // the one host sync of a step, where torch keeps even the total on the device. The engine
  // returns the total as a double (and decides on the host whether to scale), so it reads it.
  NoGradGuard no_grad;
  double total = 0;
  auto combine = [&](double term) { total = inf_norm ? max_or_nan(total, term) : total + term; };
  std::map<int, std::vector<Tensor>> device_terms;  // CUDA device index -> 0-d float64 terms
  for (const Tensor& g : grads) {
    if (g.device().is_cuda()) {
      if (g.numel() > 0) device_terms[g.device().index].push_back(device_norm_term(g.detach(), norm_type, inf_norm));
    } else {
      combine(host_norm_term(g, norm_type, inf_norm));
    }
  }
  for (const auto& [device, terms] : device_terms) {
    const Tensor all = stack(terms);
    combine((inf_norm ? max(all) : sum(all)).item());
  }
  if (!inf_norm) total = std::pow(total, 1.0 / norm_type);

  const double coefficient = max_norm / (total + 1e-6);
  if (std::isfinite(total) && coefficient < 1) {
    for (const Tensor& p : parameters) {
      if (!p.defined() || !p.grad().defined()) continue;
      const Tensor g = flat_walkable(p.grad());  // scaled in place in its layout; a view gets a copy
      if (g.device().is_cuda()) {
        scale_on_device(g, coefficient);
      } else {
        dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() {
          T* d = g.data<T>();
          const T c = static_cast<T>(coefficient);
          for (int64_t i = 0; i < g.numel(); ++i) d[i] = d[i] * c;
        });
      }
      if (!g.same(p.grad())) p.set_grad(g);
    }
  }
  return total;
}

}  // namespace pneuma::train
