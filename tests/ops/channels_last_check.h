#pragma once
// Layout checks of the channels-last tests of pooling, upsampling and cat, on the CPU
// (tests/ops/test_*_channels_last.cpp) and on CUDA (tests/cuda/test_cuda_channels_last_*.cpp): an
// op's output and its own input gradient (what its backward node returns, before a leaf's .grad
// takes the leaf's layout) must carry the strides PyTorch gives them.
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/pneuma.h"

namespace pneuma::testing {

using UnaryOp = std::function<Tensor(const Tensor&)>;

// t laid out channels-last (NHWC in memory); differentiable.
inline Tensor channels_last(const Tensor& t) { return t.contiguous(MemoryFormat::ChannelsLast); }

// The strides torch gives a dense channels-last tensor of t's shape (size-1 dims included).
inline bool strides_are_channels_last(const Tensor& t) {
  return t.strides() == strides_for(t.shape(), MemoryFormat::ChannelsLast, "test");
}

inline void require_channels_last(const Tensor& t, const char* what) {
  CAPTURE(what);
  CAPTURE(t.str());
  REQUIRE(strides_are_channels_last(t));
}

struct OutputAndGradient {
  Tensor y, dx;
};

// op on x's values laid out in `format` (a copy of a fresh leaf), and the input gradient its
// backward node returns for the output gradient g.
inline OutputAndGradient output_and_input_gradient(const UnaryOp& op, const Tensor& x, MemoryFormat format,
                                                   const Tensor& g) {
  Tensor leaf = x.detach().clone().set_requires_grad(true);
  const Tensor y = op(leaf.contiguous(format));
  REQUIRE(y.grad_fn());
  NoGradGuard no_grad;
  return {y.detach(), y.grad_fn()->apply(g)[0]};
}

// y, after checking that it and the dense input gradients its backward node returns for a
// row-major output gradient of ones are channels-last (on y's device). Gradients that are views of
// the output gradient (cat's slices, as torch's) are not dense and keep its strides.
inline Tensor checked_channels_last(const Tensor& y) {
  CHECK(strides_are_channels_last(y));
  if (!y.grad_fn()) return y;
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = y.grad_fn()->apply(Tensor::ones(y.shape(), y.dtype(), y.device()));
  for (const Tensor& dx : grads) {
    if (!dx.defined() || !dx.is_non_overlapping_and_dense()) continue;
    CHECK(dx.device() == y.device());
    CHECK(strides_are_channels_last(dx));
  }
  return y;
}

}  // namespace pneuma::testing
