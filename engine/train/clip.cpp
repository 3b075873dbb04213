#include "engine/train/clip.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/core/error.h"
#include "engine/ops/checks.h"

namespace pneuma::train {

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  PNEUMA_CHECK(norm_type > 0, "clip_grad_norm: norm type ", norm_type, " <= 0");
  const bool inf_norm = std::isinf(norm_type);
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;

  // torch: the norm of the per-parameter norms; accumulated in double here.
  double total = 0;
  for (const Tensor& g : grads) {
    ops::require_cpu("clip_grad_norm", {&g});
    const Tensor dense = g.contiguous();
    double norm = 0;
    dispatch_floating(dense.dtype(), "clip_grad_norm", [&]<class T>() {
      const T* d = dense.data<T>();
      for (int64_t i = 0; i < dense.numel(); ++i) {
        const double v = std::abs(static_cast<double>(d[i]));
        if (inf_norm)
          norm = std::max(norm, v);
        else if (norm_type == 2.0)
          norm += v * v;
        else
          norm += std::pow(v, norm_type);
      }
    });
    total = inf_norm ? std::max(total, norm) : total + norm;
  }
  if (!inf_norm) total = std::pow(total, 1.0 / norm_type);

  const double coefficient = max_norm / (total + 1e-6);
  if (std::isfinite(total) && coefficient < 1) {
    for (const Tensor& p : parameters) {
      if (!p.defined() || !p.grad().defined()) continue;
      const Tensor g = p.grad().contiguous();  // gradients are contiguous; a view gets a copy
      dispatch_floating(g.dtype(), "clip_grad_norm", [&]<class T>() {
        T* d = g.data<T>();
        const T c = static_cast<T>(coefficient);
        for (int64_t i = 0; i < g.numel(); ++i) d[i] = d[i] * c;
      });
      if (!g.same(p.grad())) p.set_grad(g);
    }
  }
  return total;
}

}  // namespace pneuma::train
