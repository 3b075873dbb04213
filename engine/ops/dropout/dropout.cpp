#include "engine/ops/dropout/dropout.h"

#include "engine/autograd/node.h"
#include "engine/ops/checks.h"
#include "engine/ops/dropout/dropout_cpu.h"
#include "engine/ops/dropout/dropout_cuda.h"
#include "engine/ops/elementwise/elementwise.h"

namespace pneuma {

namespace {

class DropoutBackward final : public autograd::Node {
 public:
  DropoutBackward(double p, Tensor mask) : p_(p), mask_(std::move(mask)) {}
  const char* name() const override { return "dropout"; }
  std::vector<Tensor> apply(const Tensor& g) override {
    Tensor dx = Tensor::empty(g.shape(), g.dtype(), g.device());
    if (g.device().is_cuda()) cuda::dropout_backward(g, mask_, p_, dx);
    else cpu::dropout_backward(g, mask_, p_, dx);
    return {dx};
  }
  void release_saved() override { mask_ = Tensor(); }

 private:
  double p_;
  Tensor mask_;  // bool: one byte per element instead of a float copy
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed) {
  const char* op = "dropout";
  ops::check_defined(op, x);
  ops::check_floating(op, x);
  PNEUMA_CHECK(p >= 0.0 && p <= 1.0, op, ": probability has to be between 0 and 1, but got ", p);
  if (p == 0.0 || !training || x.numel() == 0) return x;
  if (p == 1.0) return mul(x, 0.0);  // zeros (NaN stays NaN), gradient zero, as PyTorch
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mask = Tensor::empty(x.shape(), DType::Bool, x.device());
  if (x.device().is_cuda()) cuda::dropout_forward(x, p, seed, y, mask);
  else cpu::dropout_forward(x, p, seed, y, mask);
  if (autograd::needs_grad({&x})) autograd::record(std::make_shared<DropoutBackward>(p, autograd::save(mask)), {x}, y);
  return y;
}

}  // namespace pneuma
