// Channels-last tensors: the layout API and the layout every generic piece keeps (copies,
// conversions, elementwise ops, gradients, modules, optimizers), with torch 1.13's strides.
#include <doctest/doctest.h>

#include "engine/optim/optimizer.h"
#include "engine/pneuma.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::check_close;

namespace {

constexpr MemoryFormat kChannelsLast = MemoryFormat::ChannelsLast;

Tensor channels_last_randn(const Shape& shape, uint64_t seed, DType dtype = DType::Float32) {
  return Tensor::randn(shape, seed, dtype).contiguous(kChannelsLast);
}

}  // namespace

TEST_CASE("channels last layout follows torch strides and contiguity rules") {
  const Tensor x = channels_last_randn({2, 3, 4, 5}, 1);
  CHECK(x.strides() == Strides{60, 1, 15, 3});  // torch.randn(2,3,4,5).contiguous(memory_format=channels_last)
  CHECK(x.is_contiguous(kChannelsLast));
  CHECK_FALSE(x.is_contiguous());
  CHECK(x.is_non_overlapping_and_dense());
  CHECK(x.suggest_memory_format() == kChannelsLast);
  CHECK(x.to_vector() == Tensor::randn({2, 3, 4, 5}, 1).to_vector());
  CHECK(x.contiguous(kChannelsLast).same(x));
  CHECK(x.contiguous().strides() == Strides{60, 20, 5, 1});
  CHECK(Tensor::empty({2, 3, 4, 5}, DType::Float32, Device::cpu(), kChannelsLast).strides() == x.strides());

  // [N, C, 1, 1] is contiguous in both formats; torch keeps its NCHW strides as they are.
  const Tensor pooled = Tensor::randn({2, 3, 1, 1}, 2);
  CHECK(pooled.is_contiguous(kChannelsLast));
  CHECK(pooled.contiguous(kChannelsLast).same(pooled));
  CHECK(pooled.suggest_memory_format() == MemoryFormat::Contiguous);
  const Tensor pooled_cl = Tensor::empty({2, 3, 1, 1}, DType::Float32, Device::cpu(), kChannelsLast);
  CHECK(pooled_cl.strides() == Strides{3, 1, 3, 3});
  CHECK(pooled_cl.is_contiguous());
  CHECK(pooled_cl.suggest_memory_format() == kChannelsLast);

  // A 3-channel slice of a channels-last tensor is not dense; empty_like lays it out channels-last
  // (torch.empty_like(x[:, :, 1:3]).stride() == (30, 1, 15, 3)); an expanded tensor gets NCHW.
  const Tensor sliced = x.slice(2, 1, 3);
  CHECK_FALSE(sliced.is_non_overlapping_and_dense());
  CHECK(Tensor::empty_like(sliced).strides() == Strides{30, 1, 15, 3});
  CHECK(Tensor::empty_like(Tensor::randn({2, 3, 1, 1}, 3).expand({2, 3, 4, 5})).strides() == Strides{60, 20, 5, 1});
  CHECK(Tensor::empty_like(x, DType::Float64).strides() == x.strides());

  CHECK_THROWS_WITH_AS(Tensor::empty({3, 4}, DType::Float32, Device::cpu(), kChannelsLast),
                       "empty: channels_last needs a 4-d tensor, got shape [3, 4]", Error);
  CHECK_THROWS_WITH_AS(Tensor::empty_strided({2, 3}, {1, 1}, DType::Float32, Device::cpu()),
                       "empty_strided: strides [1, 1] do not lay out shape [2, 3] densely without overlap", Error);
  CHECK_THROWS_WITH_AS(x.contiguous(MemoryFormat::Preserve),
                       "contiguous: preserve_format is not a layout to make", Error);
}

TEST_CASE("copies and conversions keep a channels last layout") {
  const Tensor x = channels_last_randn({2, 3, 4, 5}, 4);
  CHECK(x.clone(MemoryFormat::Preserve).strides() == x.strides());
  CHECK(x.clone(MemoryFormat::Preserve).to_vector() == x.to_vector());
  CHECK(x.clone().is_contiguous());  // clone() without a format is row-major (unlike torch's clone)
  const Tensor wide = x.to(DType::Float64);
  CHECK(wide.strides() == x.strides());
  CHECK(wide.to_vector() == x.to_vector());
  CHECK(x.to(DType::BFloat16).strides() == x.strides());
  const Tensor nchw = Tensor::randn({2, 3, 4, 5}, 5);
  const Tensor relaid = nchw.laid_out_like(x);
  CHECK(relaid.strides() == x.strides());
  CHECK(relaid.to_vector() == nchw.to_vector());
  CHECK(x.laid_out_like(x).same(x));
}

TEST_CASE("contiguous channels last is differentiable") {
  const Tensor x = testing::random_input({2, 3, 2, 2}, 6);
  const Tensor w = Tensor::randn({2, 3, 2, 2}, 7, DType::Float64);
  sum(mul(x.contiguous(kChannelsLast), w.contiguous(kChannelsLast))).backward();
  check_close(x.grad(), w, 0, 0);
  CHECK(x.grad().is_contiguous());  // the leaf's own layout
}

TEST_CASE("elementwise ops keep channels last as torch does") {
  const Tensor x = channels_last_randn({2, 3, 4, 5}, 8);
  const Tensor nchw_x = x.contiguous();
  const Tensor other = Tensor::randn({2, 3, 4, 5}, 9);
  const Tensor bias = Tensor::randn({1, 3, 1, 1}, 10);
  const Strides cl = x.strides(), row_major = other.strides();
  // torch 1.13: relu(x), x + other, x + bias and bias + x are channels-last; other + x is not.
  CHECK(relu(x).strides() == cl);
  CHECK(add(x, other).strides() == cl);
  CHECK(add(other, x).strides() == row_major);
  CHECK(add(x, bias).strides() == cl);
  CHECK(add(bias, x).strides() == cl);
  CHECK(mul(x, 2.0).strides() == cl);
  CHECK(gt(x, 0.0).strides() == cl);
  // Same values as on the NCHW tensor, through the flat and the strided loops alike.
  CHECK(relu(x).to_vector() == relu(nchw_x).to_vector());
  CHECK(add(x, other).to_vector() == add(nchw_x, other).to_vector());
  CHECK(add(other, x).to_vector() == add(other, nchw_x).to_vector());
  CHECK(add(x, bias).to_vector() == add(nchw_x, bias).to_vector());
  CHECK(mul(x, x).to_vector() == mul(nchw_x, nchw_x).to_vector());
  CHECK(sigmoid(x).to_vector() == sigmoid(nchw_x).to_vector());
  // relu on a temporary writes over it and keeps its layout.
  Tensor temporary = x.clone(MemoryFormat::Preserve);
  const void* memory = temporary.raw_data();
  const Tensor activated = relu(std::move(temporary));
  CHECK(activated.raw_data() == memory);
  CHECK(activated.strides() == cl);
}

TEST_CASE("gradients of channels last activations and parameters keep the layout") {
  Tensor x = channels_last_randn({2, 3, 4, 5}, 11, DType::Float64);
  x.set_requires_grad(true);
  const Tensor w = Tensor::randn({2, 3, 4, 5}, 12, DType::Float64);
  const Tensor h = sigmoid(x);
  sum(mul(h, w)).backward();
  // The gradient lands in the leaf's layout (torch's gradient layout contract) with sigmoid's values.
  CHECK(x.grad().strides() == x.strides());
  const Tensor s = sigmoid(x.detach());
  check_close(x.grad(), mul(mul(s, sub(Tensor::ones({}, DType::Float64), s)), w), 1e-12, 1e-15);

  // A second backward accumulates into the same layout; a scalar multiple too (its gradient is an
  // expanded, non-dense tensor).
  sum(mul(x, 3.0)).backward();
  CHECK(x.grad().strides() == x.strides());
  check_close(x.grad(), add(mul(mul(s, sub(Tensor::ones({}, DType::Float64), s)), w), 3.0), 1e-12, 1e-15);
}

TEST_CASE("gradcheck elementwise channels last") {
  // gradcheck perturbs row-major leaves; the ops see channels-last tensors.
  testing::gradcheck(
      [](const std::vector<Tensor>& in) {
        const Tensor a = in[0].contiguous(kChannelsLast), b = in[1].contiguous(kChannelsLast);
        return add(mul(tanh(a), b), mul(sigmoid(b), in[2]));
      },
      {testing::random_input({2, 3, 2, 3}, 13), testing::random_input({2, 3, 2, 3}, 14),
       testing::random_input({1, 3, 1, 1}, 15)});
}

TEST_CASE("Module to channels last converts 4-d parameters in place") {
  nn::Conv2d conv(3, 4, 3);
  nn::Linear linear(4, 2);
  const Tensor weight = conv.named_parameters()[0].second;
  const std::vector<double> values = weight.to_vector();
  conv.to(kChannelsLast);
  linear.to(kChannelsLast);
  CHECK(weight.strides() == Strides{27, 1, 9, 3});  // torch: Conv2d(3,4,3).to(memory_format=channels_last)
  CHECK(weight.to_vector() == values);
  CHECK(conv.named_parameters()[0].second.same(weight));
  CHECK(conv.named_parameters()[1].second.strides() == Strides{1});
  CHECK(linear.named_parameters()[0].second.is_contiguous());
  conv.to(MemoryFormat::Contiguous);
  CHECK(weight.is_contiguous());
  CHECK(weight.to_vector() == values);
  CHECK_THROWS_WITH_AS(conv.to(MemoryFormat::Preserve), "Module.to: preserve_format is not a layout to convert to",
                       Error);
  // Module.to(dtype), as model.double(): floating tensors convert in place, keeping their layout.
  conv.to(kChannelsLast);
  conv.to(DType::Float64);
  CHECK(weight.dtype() == DType::Float64);
  CHECK(weight.strides() == Strides{27, 1, 9, 3});
  CHECK(weight.to_vector() == values);
  CHECK(conv.named_parameters()[1].second.dtype() == DType::Float64);
  CHECK_THROWS_WITH_AS(conv.to(DType::Int64), "Module.to: int64 is not a floating dtype", Error);
}

TEST_CASE("AdamW steps a channels last parameter as its row-major twin") {
  const Tensor start = Tensor::randn({4, 3, 2, 2}, 16);
  const Tensor target = Tensor::randn({4, 3, 2, 2}, 17);
  std::vector<double> results[2], state_exported[2];
  for (int channels_last = 0; channels_last < 2; ++channels_last) {
    Tensor p = channels_last ? start.clone(MemoryFormat::Preserve).contiguous(kChannelsLast) : start.clone();
    p.set_requires_grad(true);
    optim::Adam optimizer({p}, optim::adamw_options(0.1));
    for (int step = 0; step < 3; ++step) {
      p.set_grad(Tensor());
      sum(mul(sub(p, target), sub(p, target))).backward();
      CHECK(p.grad().strides() == p.strides());
      optimizer.step();
    }
    CHECK(p.strides() == (channels_last ? Strides{12, 1, 6, 3} : Strides{12, 4, 2, 1}));
    results[channels_last] = p.to_vector();
    // The state is exported in logical order, whatever the parameter's layout.
    for (const auto& [name, state] : optimizer.state_tensors())
      if (name == "exp_avg.0") state_exported[channels_last] = state.to_vector();
  }
  CHECK(results[0] == results[1]);
  CHECK(state_exported[0] == state_exported[1]);
}

TEST_CASE("flat elementwise loops never take a broadcast operand for a dense one") {
  // A [1] operand has the strides of a [3] output ({1}) but is broadcast, not walked.
  const Tensor x = Tensor::from_vector({1, 2, 3}, {3});
  const Tensor two = Tensor::from_vector({2}, {1});
  CHECK(eq(x, two).to_vector() == std::vector<double>{0, 1, 0});
  CHECK(add(two, x).to_vector() == std::vector<double>{3, 4, 5});
  CHECK(mul(x, two).to_vector() == std::vector<double>{2, 4, 6});
}

TEST_CASE("a gradient laid out as its leaf up to size-1 dims is kept in its own strides") {
  // A 1x1 conv weight is row-major and channels-last at once; a channels-last gradient for it
  // needs no relayout (same element offsets), only a copy of what the caller still holds.
  Tensor w = Tensor::randn({4, 3, 1, 1}, 30);
  w.set_requires_grad(true);
  const Tensor g = Tensor::randn({4, 3, 1, 1}, 31).clone(kChannelsLast);
  REQUIRE(g.strides() == Strides{3, 1, 3, 3});
  w.backward(g);
  CHECK(w.grad().strides() == g.strides());
  CHECK_FALSE(w.grad().storage() == g.storage());
  CHECK(w.grad().to_vector() == g.to_vector());
  CHECK(w.grad().laid_out_like(w).same(w.grad()));
}
