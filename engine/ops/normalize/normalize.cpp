#include "engine/ops/normalize/normalize.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/normalize/normalize_cpu.h"
#include "engine/ops/normalize/normalize_cuda.h"

namespace pneuma {

namespace {

class NormalizeBackward final : public autograd::Node {
 public:
  NormalizeBackward(int64_t dim, double p, double eps, Tensor x, Tensor norm)
      : dim_(dim), p_(p), eps_(eps), x_(std::move(x)), norm_(std::move(norm)) {}
  const char* name() const override { return "normalize"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    if (g.device().is_cuda()) cuda::normalize_backward(x_, norm_, g, dim_, p_, eps_, dx);
    else cpu::normalize_backward(x_, norm_, g, dim_, p_, eps_, dx);
    return {dx};
  }
  void release_saved() override {
    x_ = Tensor();
    norm_ = Tensor();
  }

 private:
  int64_t dim_;
  double p_, eps_;
  Tensor x_, norm_;
};

}  // namespace

Tensor normalize(const Tensor& x, double p, int64_t dim, double eps) {
  const char* op = "normalize";
  profiler::Scope profile_scope("normalize", op);
  ops::check_defined(op, x);
  ops::check_floating(op, x);
  PNEUMA_CHECK(std::isfinite(p) && p > 0, op, ": p must be a finite positive number, got ", p);
  PNEUMA_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  PNEUMA_CHECK(x.dim() > 0, op, ": expected a tensor with at least 1 dim, got ", x.str());
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Shape norm_shape = x.shape();
  norm_shape[d] = 1;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor norm = Tensor::empty(norm_shape, cpu::normalize_norm_dtype(x.dtype()), x.device());
  if (x.device().is_cuda()) cuda::normalize_forward(x, d, p, eps, y, norm);
  else cpu::normalize_forward(x, d, p, eps, y, norm);
  if (autograd::needs_grad({&x}))
    autograd::record(std::make_shared<NormalizeBackward>(d, p, eps, autograd::save(x), autograd::save(norm)), {x}, y);
  return y;
}

}  // namespace pneuma
