// upsample (nearest, bilinear) and cat on channels-last (NHWC in memory) input on the CPU: the
// layouts PyTorch 1.13 gives (output and input gradient channels-last; cat channels-last only when
// every part is), values equal to the row-major path bit for bit, and float64 gradient checks.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

#include "tests/kernels/kernel_check.h"
#include "tests/ops/channels_last_check.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::channels_last;
using pneuma::testing::gradcheck;
using pneuma::testing::output_and_input_gradient;
using pneuma::testing::random_input;
using pneuma::testing::require_channels_last;
using pneuma::testing::require_same_bits;
using pneuma::testing::UnaryOp;

namespace {

struct UpsampleCase {
  std::string name;
  Shape shape;
  UnaryOp op;
};

std::vector<UpsampleCase> upsample_cases() {
  return {
      {"nearest x2 (U-Net)", {2, 8, 5, 6}, [](const Tensor& x) { return upsample_nearest2d(x, {10, 12}); }},
      {"nearest scale 1.7 0.6", {2, 3, 5, 7},
       [](const Tensor& x) { return interpolate(x, std::nullopt, std::array<double, 2>{1.7, 0.6}, "nearest"); }},
      {"bilinear x2 (U-Net)", {2, 8, 5, 6}, [](const Tensor& x) { return upsample_bilinear2d(x, {10, 12}, false); }},
      {"bilinear align_corners", {2, 5, 4, 5}, [](const Tensor& x) { return upsample_bilinear2d(x, {7, 9}, true); }},
      {"bilinear down", {1, 4, 7, 6}, [](const Tensor& x) { return upsample_bilinear2d(x, {3, 4}, false); }},
  };
}

}  // namespace

TEST_SUITE("channels_last") {

TEST_CASE("upsample channels last matches the NCHW path") {
  for (const UpsampleCase& c : upsample_cases()) {
    for (const DType dtype : {DType::Float32, DType::BFloat16, DType::Float64}) {
      CAPTURE(c.name);
      const std::string dtype_label = dtype_name(dtype);
      CAPTURE(dtype_label);
      const Tensor x = Tensor::randn(c.shape, 21, DType::Float32).to(dtype);
      const Tensor g = Tensor::randn(c.op(x).shape(), 22, DType::Float32).to(dtype);
      const auto expected = output_and_input_gradient(c.op, x, MemoryFormat::Contiguous, g);
      const auto actual = output_and_input_gradient(c.op, x, MemoryFormat::ChannelsLast, channels_last(g));
      require_channels_last(actual.y, "output");
      require_channels_last(actual.dx, "input gradient");
      require_same_bits(expected.y, actual.y);
      require_same_bits(expected.dx, actual.dx);
      const auto from_row_major = output_and_input_gradient(c.op, x, MemoryFormat::ChannelsLast, g);
      require_channels_last(from_row_major.dx, "input gradient from a row-major output gradient");
      require_same_bits(expected.dx, from_row_major.dx);
    }
  }
}

// Strides printed by PyTorch 1.13 for x = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last):
// F.interpolate(x, scale_factor=2, mode=...) -> (768, 1, 48, 3), x.grad -> (192, 1, 24, 3);
// a = [2, 3, 4, 4] and b = [2, 5, 4, 4], both channels-last: torch.cat([a, b], 1) -> (128, 1, 32, 8);
// with either part row-major -> (128, 16, 4, 1); torch.cat([a, a], 0) -> (48, 1, 12, 3);
// torch.cat([a, a], 2) -> (96, 1, 12, 3).
TEST_CASE("upsample and cat channels last strides equal torch's") {
  const Tensor x = channels_last(Tensor::randn({2, 3, 8, 8}, 23).set_requires_grad(true));
  for (const char* mode : {"nearest", "bilinear"}) {
    CAPTURE(mode);
    const Tensor y = interpolate(x, std::nullopt, std::array<double, 2>{2, 2}, mode);
    CHECK(y.strides() == Strides{768, 1, 48, 3});
    NoGradGuard no_grad;
    CHECK(y.grad_fn()->apply(Tensor::ones(y.shape()))[0].strides() == Strides{192, 1, 24, 3});
  }
  const Tensor a = channels_last(Tensor::randn({2, 3, 4, 4}, 24)), b = channels_last(Tensor::randn({2, 5, 4, 4}, 25));
  CHECK(cat({a, b}, 1).strides() == Strides{128, 1, 32, 8});
  CHECK(cat({a, b.contiguous()}, 1).strides() == Strides{128, 16, 4, 1});
  CHECK(cat({a.contiguous(), b}, 1).strides() == Strides{128, 16, 4, 1});
  CHECK(cat({a, a}, 0).strides() == Strides{48, 1, 12, 3});
  CHECK(cat({a, a}, 2).strides() == Strides{96, 1, 12, 3});
}

TEST_CASE("cat channels last values and gradients") {
  // The U-Net's skip connection: decoder and encoder features joined along the channels.
  for (const DType dtype : {DType::Float32, DType::BFloat16, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor a = Tensor::randn({2, 3, 5, 6}, 26, DType::Float32).to(dtype);
    const Tensor b = Tensor::randn({2, 4, 5, 6}, 27, DType::Float32).to(dtype);
    for (const int64_t dim : {0, 1, 2, 3}) {
      CAPTURE(dim);
      const Tensor second = dim == 1 ? b : a;
      const Tensor actual = cat({channels_last(a), channels_last(second)}, dim);
      require_channels_last(actual, "cat");
      require_same_bits(cat({a, second}, dim), actual);
    }
  }
  Tensor a = Tensor::randn({2, 3, 5, 6}, 28).set_requires_grad(true);
  Tensor b = Tensor::randn({2, 4, 5, 6}, 29).set_requires_grad(true);
  const Tensor y = cat({channels_last(a), channels_last(b)}, 1);
  const Tensor g = Tensor::randn(y.shape(), 30);
  y.backward(channels_last(g));
  require_same_bits(g.slice(1, 0, 3), a.grad());
  require_same_bits(g.slice(1, 3, 7), b.grad());
}

}  // TEST_SUITE("channels_last")

TEST_SUITE("gradcheck") {

TEST_CASE("gradcheck upsample channels last") {
  gradcheck([](const auto& x) { return upsample_nearest2d(channels_last(x[0]), {7, 11}); },
            {random_input({2, 3, 4, 5}, 1)});
  for (const bool align : {false, true}) {
    CAPTURE(align);
    gradcheck([=](const auto& x) { return upsample_bilinear2d(channels_last(x[0]), {7, 9}, align); },
              {random_input({2, 3, 4, 5}, 2)});
    gradcheck([=](const auto& x) { return upsample_bilinear2d(channels_last(x[0]), {3, 4}, align); },
              {random_input({1, 2, 7, 6}, 3)});
  }
}

TEST_CASE("gradcheck cat channels last") {
  gradcheck([](const auto& x) { return cat({channels_last(x[0]), channels_last(x[1])}, 1); },
            {random_input({2, 3, 3, 4}, 4), random_input({2, 2, 3, 4}, 5)});
}

}  // TEST_SUITE("gradcheck")
