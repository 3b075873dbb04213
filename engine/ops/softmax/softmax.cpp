#include "engine/ops/softmax/softmax.h"

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/softmax/softmax_cpu.h"
#include "engine/ops/softmax/softmax_cuda.h"

namespace pneuma {

namespace {

class SoftmaxBackward final : public autograd::Node {
 public:
  SoftmaxBackward(int64_t dim, bool log, Tensor y) : dim_(dim), log_(log), y_(std::move(y)) {}
  const char* name() const override { return log_ ? "log_softmax" : "softmax"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    if (g.device().is_cuda()) cuda::softmax_backward(y_, g, dim_, log_, dx);
    else cpu::softmax_backward(y_, g, dim_, log_, dx);
    return {dx};
  }
  void release_saved() override { y_ = Tensor(); }

 private:
  int64_t dim_;
  bool log_;
  Tensor y_;
};

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  profiler::Scope profile_scope("softmax", op);
  ops::check_defined(op, x);
  ops::check_floating(op, x);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) cuda::softmax_forward(x, d, log, y);
  else cpu::softmax_forward(x, d, log, y);
  if (autograd::needs_grad({&x})) autograd::record(std::make_shared<SoftmaxBackward>(d, log, autograd::save(y)), {x}, y);
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace pneuma
