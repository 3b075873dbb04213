// Channels-last convolutions on the CPU (engine/ops/conv): conv2d and conv_transpose2d with an NHWC
// input or an OHWI weight give the NCHW path's values and gradients, in the layouts torch 1.13
// gives (its strides are written out below, printed once by /usr/bin/python3 with torch 1.13), with
// oneDNN serving float32 and bfloat16 natively and the reference loops float64.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/ops/conv/conv_cpu.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

using Pair = std::array<int64_t, 2>;

namespace {

constexpr MemoryFormat kNchw = MemoryFormat::Contiguous;
constexpr MemoryFormat kChannelsLast = MemoryFormat::ChannelsLast;

using ConvFunction = std::function<Tensor(const Tensor& x, const Tensor& w, const Tensor& b)>;

struct Run {
  Tensor y, gx, gw, gb;  // output and the leaves' gradients
  Tensor x, w;           // the leaves, in the layouts asked for
};

// op on fresh leaves holding x and w laid out as asked (b stays 1-d), then backward with gy. The
// graph is kept, so that a test can run the conv's backward node again by itself.
Run run(const ConvFunction& op, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gy,
        MemoryFormat x_format, MemoryFormat w_format) {
  Run r;
  r.x = x.clone(x_format);
  r.w = w.clone(w_format);
  r.x.set_requires_grad(true);
  r.w.set_requires_grad(true);
  Tensor bias = b.defined() ? b.clone() : b;
  if (bias.defined()) bias.set_requires_grad(true);
  r.y = op(r.x, r.w, bias);
  r.y.backward(gy, /*retain_graph=*/true);
  r.gx = r.x.grad();
  r.gw = r.w.grad();
  if (bias.defined()) r.gb = bias.grad();
  return r;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// Channels-last results against the NCHW path's. float64 runs the same reference loops on the
// same values (the channels-last problem on contiguous copies), so it must be exact. float32 runs
// other oneDNN kernels for NHWC, which sum in another order (the tolerance of test_conv.cpp's fast
// path checks). bfloat16 computes in float and rounds once on both paths: another summation order
// may round one value the other way, one bfloat16 ulp (2^-7 of the value at most).
void check_same_values(const Tensor& channels_last, const Tensor& nchw, const char* what) {
  INFO(what);
  REQUIRE(channels_last.defined() == nchw.defined());
  if (!nchw.defined()) return;
  REQUIRE(channels_last.dtype() == nchw.dtype());
  const double scale = std::max(max_abs(nchw), 1.0);
  switch (nchw.dtype()) {
    case DType::Float64: CHECK(channels_last.to_vector() == nchw.to_vector()); break;
    case DType::Float32: check_close(channels_last, nchw, 1e-4, 1e-5 * scale); break;
    default: check_close(channels_last, nchw, 0x1p-7, 1e-4 * scale); break;
  }
}

// The layouts of a channels-last run: the output channels-last, each leaf's gradient in its
// leaf's layout (as torch's AccumulateGrad), and the gradients the conv's own backward returns in
// the layout it ran in (channels-last activations and weight; the bias stays 1-d).
void check_channels_last_layouts(const Run& r, const Tensor& gy) {
  CHECK(r.y.is_contiguous(kChannelsLast));
  CHECK(r.gx.strides() == r.x.strides());
  CHECK(same_element_offsets(r.w.shape(), r.gw.strides(), r.w.strides()));  // strides may differ on size-1 dims
  const std::vector<Tensor> grads = r.y.grad_fn()->apply(gy);
  REQUIRE(grads.size() == 3);
  CHECK(grads[0].is_contiguous(kChannelsLast));
  CHECK(grads[1].is_contiguous(kChannelsLast));
  if (grads[2].defined()) CHECK(grads[2].dim() == 1);
}

// For each dtype and each channels-last placement (input, weight, both): the conv's values and
// gradients equal the NCHW run's, the layouts are channels-last, and oneDNN served float32 and
// bfloat16 (`onednn_calls` per run) while float64 ran the reference loops.
void check_against_nchw(const ConvFunction& op, const Shape& x_shape, const Shape& w_shape, int64_t bias_size,
                        int64_t onednn_calls) {
  for (const DType dtype : {DType::Float32, DType::BFloat16, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = Tensor::randn(x_shape, 11).to(dtype), w = Tensor::randn(w_shape, 12).to(dtype);
    const Tensor b = bias_size > 0 ? Tensor::randn({bias_size}, 13).to(dtype) : Tensor();
    const Tensor probe = op(x, w, b);
    const Tensor gy = Tensor::randn(probe.shape(), 14).to(dtype);
    const Run nchw = run(op, x, w, b, gy, kNchw, kNchw);
    CHECK(nchw.y.is_contiguous());
    const bool onednn = dtype != DType::Float64;
    for (const auto& [x_format, w_format, placement] :
         {std::tuple{kChannelsLast, kNchw, "channels-last input"}, std::tuple{kNchw, kChannelsLast, "channels-last weight"},
          std::tuple{kChannelsLast, kChannelsLast, "both channels-last"}}) {
      const std::string where = placement;
      CAPTURE(where);
      const int64_t calls_before = cpu::onednn_conv_calls();
      const Run cl = run(op, x, w, b, gy, x_format, w_format);
      CHECK(cpu::onednn_conv_calls() - calls_before == (onednn ? onednn_calls : 0));
      check_channels_last_layouts(cl, gy);
      check_same_values(cl.y, nchw.y, "output");
      check_same_values(cl.gx, nchw.gx, "input gradient");
      check_same_values(cl.gw, nchw.gw, "weight gradient");
      check_same_values(cl.gb, nchw.gb, "bias gradient");
    }
    if (dtype == DType::Float32) {
      // The reference loops on a channels-last problem (contiguous copies, results copied back).
      cpu::FastPathGuard reference_only;
      const Run cl = run(op, x, w, b, gy, kChannelsLast, kChannelsLast);
      check_channels_last_layouts(cl, gy);
      check_same_values(cl.y, nchw.y, "reference output");
      check_same_values(cl.gx, nchw.gx, "reference input gradient");
      check_same_values(cl.gw, nchw.gw, "reference weight gradient");
    }
  }
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("conv2d channels last equals the NCHW path") {
    struct Case {
      const char* what;
      Shape x, w;
      bool bias;
      Pair stride, padding, dilation;
      int64_t groups;
    };
    const Case cases[] = {
        {"stem 7x7 stride 2 pad 3", {2, 3, 20, 20}, {16, 3, 7, 7}, false, {2, 2}, {3, 3}, {1, 1}, 1},
        {"3x3 stride 1 pad 1, 32 channels", {2, 32, 8, 8}, {32, 32, 3, 3}, false, {1, 1}, {1, 1}, {1, 1}, 1},
        {"3x3 stride 2 pad 1, 32 -> 64", {2, 32, 9, 9}, {64, 32, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 1},
        {"1x1 stride 2 downsample, 64 -> 128", {2, 64, 6, 6}, {128, 64, 1, 1}, false, {2, 2}, {0, 0}, {1, 1}, 1},
        {"3x3 with bias, odd channels and size", {3, 5, 9, 7}, {6, 5, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 1},
        {"asymmetric stride/padding/dilation", {2, 8, 11, 10}, {12, 8, 3, 2}, true, {2, 1}, {1, 2}, {2, 1}, 1},
        {"groups 4", {2, 16, 7, 7}, {32, 4, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 4},
        {"depthwise stride 2", {2, 32, 9, 9}, {32, 1, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 32},
        {"1x1 output plane", {2, 8, 3, 3}, {16, 8, 3, 3}, true, {1, 1}, {0, 0}, {1, 1}, 1},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      check_against_nchw(
          [&](const Tensor& x, const Tensor& w, const Tensor& b) {
            return conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
          },
          c.x, c.w, c.bias ? c.w[0] : 0, /*onednn_calls=*/2);
    }
  }

  TEST_CASE("conv_transpose2d channels last equals the NCHW path") {
    struct Case {
      const char* what;
      Shape x, w;
      bool bias;
      Pair stride, padding, output_padding, dilation;
      int64_t groups;
    };
    const Case cases[] = {
        {"upsampling 2x2 stride 2, 16 -> 8", {2, 16, 6, 6}, {16, 8, 2, 2}, true, {2, 2}, {0, 0}, {0, 0}, {1, 1}, 1},
        {"3x3 stride 2 pad 1 output_padding 1", {2, 8, 5, 5}, {8, 6, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1},
        {"groups 2", {2, 8, 6, 6}, {8, 6, 3, 3}, true, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 2},
        {"dilation with output_padding beyond the stride", {2, 6, 5, 6}, {6, 4, 3, 2}, true, {1, 2}, {1, 0}, {1, 1},
         {2, 1}, 1},
    };
    for (const Case& c : cases) {
      CAPTURE(c.what);
      check_against_nchw(
          [&](const Tensor& x, const Tensor& w, const Tensor& b) {
            return conv_transpose2d(x, w, b, c.stride, c.padding, c.output_padding, c.groups, c.dilation);
          },
          // forward is a conv backward-data; backward a conv forward plus a backward-weights
          c.x, c.w, c.bias ? c.w[1] * c.groups : 0, /*onednn_calls=*/3);
    }
  }

  TEST_CASE("conv channels last layouts match torch") {
    // Strides printed by torch 1.13 on the CPU (mkldnn for float32, the slow path for float64;
    // bfloat16 gives the same) for these problems.
    for (const DType dtype : {DType::Float32, DType::BFloat16, DType::Float64}) {
      CAPTURE(dtype_name(dtype));
      const auto conv = [](const Tensor& x, const Tensor& w, const Tensor& b) { return conv2d(x, w, b, {1, 1}, {1, 1}); };
      const Tensor x = Tensor::randn({2, 4, 5, 6}, 1).to(dtype), w = Tensor::randn({6, 4, 3, 3}, 2).to(dtype);
      const Tensor b = Tensor::randn({6}, 3).to(dtype), gy = Tensor::randn({2, 6, 5, 6}, 4).to(dtype);
      {
        INFO("channels-last input");
        const Run r = run(conv, x, w, b, gy, kChannelsLast, kNchw);
        CHECK(r.y.strides() == Strides{180, 1, 36, 6});
        CHECK(r.gx.strides() == Strides{120, 1, 24, 4});
        CHECK(r.gw.strides() == Strides{36, 9, 3, 1});
      }
      {
        INFO("channels-last weight");
        const Run r = run(conv, x, w, b, gy, kNchw, kChannelsLast);
        CHECK(r.y.strides() == Strides{180, 1, 36, 6});
        CHECK(r.gx.strides() == Strides{120, 30, 6, 1});
        CHECK(r.gw.strides() == Strides{36, 1, 12, 4});
      }
      {
        INFO("groups 2");
        const Tensor wg = Tensor::randn({8, 2, 3, 3}, 5).to(dtype);
        const Run r = run([](const Tensor& xi, const Tensor& wi,
                             const Tensor&) { return conv2d(xi, wi, Tensor(), {1, 1}, {1, 1}, {1, 1}, 2); },
                          x, wg, Tensor(), Tensor::randn({2, 8, 5, 6}, 6).to(dtype), kChannelsLast, kNchw);
        CHECK(r.y.strides() == Strides{240, 1, 48, 8});
        CHECK(r.gw.strides() == Strides{18, 9, 3, 1});
      }
      {
        INFO("unbatched input with a channels-last weight: the batch of one is squeezed away");
        const Tensor y = conv2d(Tensor::randn({4, 5, 6}, 7).to(dtype), w.contiguous(kChannelsLast));
        CHECK(y.shape() == Shape{6, 3, 4});
        CHECK(y.strides() == Strides{1, 24, 6});
      }
      {
        INFO("[N, C, 1, 1] with channels-last strides suggests NCHW, as in torch");
        const Tensor x11 = Tensor::randn({2, 4, 1, 1}, 8).to(dtype).contiguous(kChannelsLast);
        CHECK(x11.strides() == Strides{4, 1, 1, 1});
        const Tensor y = conv2d(x11, Tensor::randn({6, 4, 1, 1}, 9).to(dtype));
        CHECK(y.strides() == Strides{6, 1, 1, 1});
      }
      {
        INFO("conv_transpose2d");
        // torch 1.13's CPU conv_transpose2d (its slow path) returns NCHW, [360, 120, 12, 1], where
        // cuDNN's returns channels-last; Pneuma's follows the conv2d rule on both devices.
        const Tensor wt = Tensor::randn({4, 3, 3, 3}, 10).to(dtype), bt = Tensor::randn({3}, 11).to(dtype);
        const auto convt = [](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
          return conv_transpose2d(xi, wi, bi, {2, 2}, {1, 1}, {1, 1});
        };
        const Tensor gyt = Tensor::randn({2, 3, 10, 12}, 12).to(dtype);
        const Run input_cl = run(convt, x, wt, bt, gyt, kChannelsLast, kNchw);
        CHECK(input_cl.y.strides() == Strides{360, 1, 36, 3});
        CHECK(input_cl.gx.strides() == Strides{120, 1, 24, 4});
        CHECK(input_cl.gw.strides() == Strides{27, 9, 3, 1});
        const Run weight_cl = run(convt, x, wt, bt, gyt, kNchw, kChannelsLast);
        CHECK(weight_cl.y.strides() == Strides{360, 1, 36, 3});
        CHECK(weight_cl.gx.strides() == Strides{120, 30, 6, 1});
        CHECK(weight_cl.gw.strides() == Strides{27, 1, 9, 3});
      }
    }
  }

  TEST_CASE("conv channels last keeps the layout through a bias-only gradient") {
    // Only the bias wants a gradient: the conv's backward is the channel sum of a channels-last gy.
    const Tensor x = Tensor::randn({2, 6, 5, 4}, 1).contiguous(kChannelsLast), w = Tensor::randn({3, 6, 3, 3}, 2);
    Tensor b = Tensor::randn({3}, 3);
    b.set_requires_grad(true);
    const Tensor y = conv2d(x, w, b, {1, 1}, {1, 1});
    CHECK(y.is_contiguous(kChannelsLast));
    const Tensor gy = Tensor::randn(y.shape(), 4);
    y.backward(gy);
    check_close(b.grad(), sum(gy, {0, 2, 3}), 1e-5, 1e-5);
  }
}

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck conv2d channels last") {
    // gradcheck perturbs contiguous float64 leaves; each function lays them out channels-last first,
    // so the conv runs (and differentiates) channels-last.
    const auto conv = [](Pair stride, Pair padding, Pair dilation, int64_t groups, bool input_cl, bool weight_cl) {
      return [=](const std::vector<Tensor>& v) {
        const Tensor x = input_cl ? v[0].contiguous(kChannelsLast) : v[0];
        const Tensor w = weight_cl ? v[1].contiguous(kChannelsLast) : v[1];
        const Tensor y = conv2d(x, w, v.size() > 2 ? v[2] : Tensor(), stride, padding, dilation, groups);
        CHECK(y.is_contiguous(kChannelsLast));
        return y;
      };
    };
    SUBCASE("padding 1 with bias") {
      gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 1, true, false),
                {random_input({2, 3, 5, 6}, 1), random_input({4, 3, 3, 3}, 2), random_input({4}, 3)});
    }
    SUBCASE("stride 2, dilation (2, 1), asymmetric padding") {
      gradcheck(conv({2, 2}, {1, 2}, {2, 1}, 1, true, true),
                {random_input({2, 2, 7, 6}, 4), random_input({3, 2, 3, 2}, 5), random_input({3}, 6)});
    }
    SUBCASE("groups 2, channels-last weight only") {
      gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 2, false, true),
                {random_input({1, 4, 5, 5}, 7), random_input({6, 2, 3, 3}, 8), random_input({6}, 9)});
    }
  }

  TEST_CASE("gradcheck conv_transpose2d channels last") {
    const auto convt = [](Pair stride, Pair padding, Pair output_padding, int64_t groups) {
      return [=](const std::vector<Tensor>& v) {
        const Tensor y = conv_transpose2d(v[0].contiguous(kChannelsLast), v[1], v.size() > 2 ? v[2] : Tensor(),
                                          stride, padding, output_padding, groups);
        CHECK(y.is_contiguous(kChannelsLast));
        return y;
      };
    };
    SUBCASE("stride 2 padding 1 output_padding 1 with bias") {
      gradcheck(convt({2, 2}, {1, 1}, {1, 1}, 1),
                {random_input({1, 2, 3, 4}, 1), random_input({2, 3, 3, 3}, 2), random_input({3}, 3)});
    }
    SUBCASE("groups 2") {
      gradcheck(convt({2, 2}, {0, 0}, {0, 0}, 2),
                {random_input({1, 4, 3, 3}, 4), random_input({4, 3, 3, 3}, 5), random_input({6}, 6)});
    }
  }
}
