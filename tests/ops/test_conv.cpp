#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "engine/ops/conv/conv_cpu.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

using Pair = std::array<int64_t, 2>;

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck conv2d") {
    const auto conv = [](Pair stride, Pair padding, Pair dilation, int64_t groups) {
      return [=](const std::vector<Tensor>& v) {
        return conv2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), stride, padding, dilation, groups);
      };
    };
    SUBCASE("default arguments, with bias") {
      gradcheck(conv({1, 1}, {0, 0}, {1, 1}, 1),
                {random_input({2, 3, 5, 6}, 1), random_input({4, 3, 3, 3}, 2), random_input({4}, 3)});
    }
    SUBCASE("no bias") {
      gradcheck(conv({1, 1}, {0, 0}, {1, 1}, 1), {random_input({1, 2, 5, 5}, 4), random_input({3, 2, 3, 3}, 5)});
    }
    SUBCASE("stride 2 on an even size (last row and column unused)") {
      gradcheck(conv({2, 2}, {0, 0}, {1, 1}, 1),
                {random_input({2, 2, 8, 8}, 6), random_input({3, 2, 3, 3}, 7), random_input({3}, 8)});
    }
    SUBCASE("padding 1, and asymmetric padding (1, 2) with stride (2, 1)") {
      gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 1), {random_input({1, 2, 5, 5}, 9), random_input({3, 2, 3, 3}, 10)});
      gradcheck(conv({2, 1}, {1, 2}, {1, 1}, 1),
                {random_input({2, 2, 6, 5}, 11), random_input({2, 2, 3, 3}, 12), random_input({2}, 13)});
    }
    SUBCASE("dilation 2, and dilation (2, 1) with padding") {
      gradcheck(conv({1, 1}, {0, 0}, {2, 2}, 1), {random_input({1, 2, 7, 7}, 14), random_input({2, 2, 3, 3}, 15)});
      gradcheck(conv({1, 1}, {2, 1}, {2, 1}, 1), {random_input({1, 2, 5, 6}, 16), random_input({3, 2, 3, 2}, 17)});
    }
    SUBCASE("groups 2 and depthwise") {
      gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 2),
                {random_input({2, 4, 5, 5}, 18), random_input({6, 2, 3, 3}, 19), random_input({6}, 20)});
      gradcheck(conv({2, 2}, {1, 1}, {1, 1}, 3),
                {random_input({1, 3, 6, 6}, 21), random_input({3, 1, 3, 3}, 22), random_input({3}, 23)});
    }
    SUBCASE("non-square kernels and 1x1") {
      gradcheck(conv({1, 1}, {0, 1}, {1, 1}, 1), {random_input({1, 2, 6, 4}, 24), random_input({3, 2, 1, 3}, 25)});
      gradcheck(conv({1, 1}, {0, 0}, {1, 1}, 1),
                {random_input({2, 3, 4, 4}, 26), random_input({5, 3, 1, 1}, 27), random_input({5}, 28)});
      gradcheck(conv({2, 2}, {0, 0}, {1, 1}, 1), {random_input({2, 3, 5, 5}, 29), random_input({4, 3, 1, 1}, 30)});
    }
    SUBCASE("unbatched CHW input") {
      gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 1), {random_input({2, 4, 4}, 31), random_input({3, 2, 3, 3}, 32)});
    }
  }

  TEST_CASE("gradcheck conv_transpose2d") {
    const auto convt = [](Pair stride, Pair padding, Pair output_padding, int64_t groups, Pair dilation) {
      return [=](const std::vector<Tensor>& v) {
        return conv_transpose2d(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), stride, padding, output_padding,
                                groups, dilation);
      };
    };
    SUBCASE("default arguments, with bias") {
      gradcheck(convt({1, 1}, {0, 0}, {0, 0}, 1, {1, 1}),
                {random_input({2, 3, 4, 4}, 1), random_input({3, 2, 3, 3}, 2), random_input({2}, 3)});
    }
    SUBCASE("stride 2 with output_padding 1 and padding 1") {
      gradcheck(convt({2, 2}, {1, 1}, {1, 1}, 1, {1, 1}),
                {random_input({1, 2, 3, 4}, 4), random_input({2, 3, 3, 3}, 5), random_input({3}, 6)});
      gradcheck(convt({2, 1}, {0, 1}, {1, 0}, 1, {1, 1}), {random_input({2, 2, 3, 3}, 7), random_input({2, 2, 2, 3}, 8)});
    }
    SUBCASE("groups") {
      gradcheck(convt({2, 2}, {0, 0}, {0, 0}, 2, {1, 1}),
                {random_input({1, 4, 3, 3}, 9), random_input({4, 3, 3, 3}, 10), random_input({6}, 11)});
    }
    SUBCASE("dilation, with output_padding larger than the stride") {
      gradcheck(convt({1, 2}, {1, 0}, {1, 1}, 1, {2, 1}),
                {random_input({1, 2, 4, 3}, 12), random_input({2, 2, 3, 2}, 13), random_input({2}, 14)});
    }
  }
}

namespace {

// Runs f (returning one output) on float32 copies of the inputs twice, through oneDNN
// and through the reference loops, and compares the output and all input gradients.
// Tolerances scale with the largest magnitude of each result (float32 sums of
// hundreds of products).
void compare_fast_and_reference(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                const std::vector<Shape>& shapes, int64_t onednn_calls) {
  std::vector<Tensor> fast_in, ref_in;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Tensor v = Tensor::randn(shapes[i], 100 + i, DType::Float32);
    fast_in.push_back(v.clone().set_requires_grad(true));
    ref_in.push_back(v.clone().set_requires_grad(true));
  }
  const int64_t calls_before = cpu::onednn_conv_calls();
  const Tensor fast = f(fast_in);
  const Tensor weight = Tensor::randn(fast.shape(), 7, DType::Float32);
  fast.backward(weight);
  CHECK_MESSAGE(cpu::onednn_conv_calls() == calls_before + onednn_calls, "oneDNN did not serve every call");
  Tensor ref;
  {
    cpu::FastPathGuard reference_only;
    const int64_t calls = cpu::onednn_conv_calls();
    ref = f(ref_in);
    ref.backward(weight);
    CHECK(cpu::onednn_conv_calls() == calls);
  }
  const auto compare = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> v = b.to_vector();
    double scale = 0;
    for (double x : v) scale = std::max(scale, std::abs(x));
    check_close(a, b, 1e-4, 1e-5 * std::max(scale, 1.0));
  };
  {
    INFO("output");
    compare(fast, ref);
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("gradient of input ", i, " ", shape_str(shapes[i]));
    compare(fast_in[i].grad(), ref_in[i].grad());
  }
}

struct ConvCase {
  const char* what;
  Shape x, w;
  bool bias;
  Pair stride, padding, dilation;
  int64_t groups;
};

}  // namespace

TEST_SUITE("fastpath") {
  TEST_CASE("fastpath conv2d") {
    const ConvCase cases[] = {
        {"stem 7x7 stride 2 pad 3", {2, 3, 32, 32}, {64, 3, 7, 7}, false, {2, 2}, {3, 3}, {1, 1}, 1},
        {"3x3 stride 1 pad 1, 64 channels", {2, 64, 8, 8}, {64, 64, 3, 3}, false, {1, 1}, {1, 1}, {1, 1}, 1},
        {"3x3 stride 2 pad 1, 64 -> 128", {2, 64, 8, 8}, {128, 64, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 1},
        {"1x1 stride 2 downsample, 128 -> 256", {2, 128, 6, 6}, {256, 128, 1, 1}, false, {2, 2}, {0, 0}, {1, 1}, 1},
        {"3x3 with bias, odd channels and size", {3, 5, 9, 7}, {6, 5, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 1},
        {"asymmetric stride/padding/dilation", {2, 8, 11, 10}, {12, 8, 3, 2}, true, {2, 1}, {1, 2}, {2, 1}, 1},
        {"groups 4", {2, 16, 7, 7}, {32, 4, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 4},
        {"depthwise stride 2", {2, 32, 9, 9}, {32, 1, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 32},
    };
    for (const ConvCase& c : cases) {
      INFO(c.what);
      std::vector<Shape> shapes{c.x, c.w};
      if (c.bias) shapes.push_back({c.w[0]});
      compare_fast_and_reference(
          [&](const std::vector<Tensor>& v) {
            return conv2d(v[0], v[1], c.bias ? v[2] : Tensor(), c.stride, c.padding, c.dilation, c.groups);
          },
          shapes, /*onednn_calls=*/2);
    }
  }

  TEST_CASE("fastpath conv_transpose2d") {
    struct TransposeCase {
      const char* what;
      Shape x, w;
      bool bias;
      Pair stride, padding, output_padding, dilation;
      int64_t groups;
    };
    const TransposeCase cases[] = {
        {"upsampling 2x2 stride 2, 64 -> 32", {2, 64, 8, 8}, {64, 32, 2, 2}, true, {2, 2}, {0, 0}, {0, 0}, {1, 1}, 1},
        {"3x3 stride 2 pad 1 output_padding 1", {2, 32, 7, 7}, {32, 16, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1},
        {"3x3 stride 1 pad 1", {2, 16, 9, 9}, {16, 16, 3, 3}, true, {1, 1}, {1, 1}, {0, 0}, {1, 1}, 1},
        {"groups 2", {2, 8, 6, 6}, {8, 6, 3, 3}, true, {2, 2}, {1, 1}, {0, 0}, {1, 1}, 2},
        {"dilation with output_padding beyond the stride", {2, 6, 5, 6}, {6, 4, 3, 2}, true, {1, 2}, {1, 0}, {1, 1}, {2, 1}, 1},
    };
    for (const TransposeCase& c : cases) {
      INFO(c.what);
      std::vector<Shape> shapes{c.x, c.w};
      if (c.bias) shapes.push_back({c.w[1] * c.groups});
      compare_fast_and_reference(
          [&](const std::vector<Tensor>& v) {
            return conv_transpose2d(v[0], v[1], c.bias ? v[2] : Tensor(), c.stride, c.padding, c.output_padding,
                                    c.groups, c.dilation);
          },
          // forward is a conv backward-data; backward a conv forward plus a backward-weights
          shapes, /*onednn_calls=*/3);
    }
  }
}

TEST_SUITE("fastpath") {
  TEST_CASE("fastpath conv2d from several threads at once") {
    // Cached primitives, per-thread streams and workspaces: concurrent calls on the
    // same problem must each get the single-threaded answer.
    const Tensor x = Tensor::randn({2, 32, 12, 12}, 1), w = Tensor::randn({32, 32, 3, 3}, 2);
    const auto run = [&](Tensor& y, Tensor& gx, Tensor& gw) {
      const Tensor xi = x.clone().set_requires_grad(true), wi = w.clone().set_requires_grad(true);
      y = conv2d(xi, wi, Tensor(), {1, 1}, {1, 1});
      y.backward(Tensor::ones(y.shape()));
      gx = xi.grad();
      gw = wi.grad();
    };
    Tensor y0, gx0, gw0;
    run(y0, gx0, gw0);
    constexpr int kThreads = 4;
    std::vector<std::array<Tensor, 3>> results(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        try {
          for (int repeat = 0; repeat < 3; ++repeat) run(results[t][0], results[t][1], results[t][2]);
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    for (std::thread& t : threads) t.join();
    for (int t = 0; t < kThreads; ++t) {
      INFO("thread ", t);
      CHECK(errors[t].empty());
      check_close(results[t][0], y0, 1e-5, 1e-4);
      check_close(results[t][1], gx0, 1e-5, 1e-4);
      check_close(results[t][2], gw0, 1e-5, 1e-3);
    }
  }
}

TEST_SUITE("parity") {
  TEST_CASE("parity conv2d") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-10 : 1e-4;
      check_parity("conv2d_bias", [](const auto& v) { return conv2d(v[0], v[1], v[2]); }, dtype, rtol, atol);
      check_parity("conv2d_stride2_groups", [](const auto& v) {
        return conv2d(v[0], v[1], Tensor(), {2, 2}, {0, 0}, {1, 1}, 2);
      }, dtype, rtol, atol);
      check_parity("conv2d_padding_dilation", [](const auto& v) {
        return conv2d(v[0], v[1], v[2], {1, 2}, {1, 2}, {2, 1});
      }, dtype, rtol, atol);
      check_parity("conv2d_depthwise", [](const auto& v) {
        return conv2d(v[0], v[1], v[2], {1, 1}, {1, 1}, {1, 1}, 4);
      }, dtype, rtol, atol);
      check_parity("conv2d_stem_7x7", [](const auto& v) {
        return conv2d(v[0], v[1], Tensor(), {2, 2}, {3, 3});
      }, dtype, rtol, atol);
      check_parity("conv2d_unbatched", [](const auto& v) { return conv2d(v[0], v[1]); }, dtype, rtol, atol);
    }
  }
  TEST_CASE("parity conv_transpose2d") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-10 : 1e-4, atol = dtype == DType::Float64 ? 1e-10 : 1e-4;
      check_parity("conv_transpose2d_bias", [](const auto& v) { return conv_transpose2d(v[0], v[1], v[2]); },
                   dtype, rtol, atol);
      check_parity("conv_transpose2d_stride2_output_padding_groups", [](const auto& v) {
        return conv_transpose2d(v[0], v[1], v[2], {2, 2}, {1, 1}, {1, 1}, 2);
      }, dtype, rtol, atol);
      check_parity("conv_transpose2d_dilation", [](const auto& v) {
        return conv_transpose2d(v[0], v[1], Tensor(), {1, 2}, {1, 0}, {1, 1}, 1, {2, 1});
      }, dtype, rtol, atol);
      check_parity("conv_transpose2d_unbatched", [](const auto& v) {
        return conv_transpose2d(v[0], v[1], Tensor(), {2, 2});
      }, dtype, rtol, atol);
    }
  }
}

TEST_CASE("conv2d and conv_transpose2d output shapes follow PyTorch") {
  const Tensor x = Tensor::zeros({2, 3, 224, 224});
  CHECK(conv2d(x, Tensor::zeros({64, 3, 7, 7}), Tensor(), {2, 2}, {3, 3}).shape() == Shape{2, 64, 112, 112});
  CHECK(conv2d(Tensor::zeros({1, 64, 56, 56}), Tensor::zeros({128, 64, 1, 1}), Tensor(), {2, 2}).shape() ==
        Shape{1, 128, 28, 28});
  CHECK(conv2d(Tensor::zeros({3, 9, 9}), Tensor::zeros({4, 3, 3, 3})).shape() == Shape{4, 7, 7});
  CHECK(conv_transpose2d(Tensor::zeros({1, 4, 7, 7}), Tensor::zeros({4, 2, 3, 3}), Tensor(), {2, 2}, {1, 1}, {1, 1})
            .shape() == Shape{1, 2, 14, 14});
  CHECK(conv2d(Tensor::zeros({0, 3, 8, 8}), Tensor::zeros({4, 3, 3, 3})).shape() == Shape{0, 4, 6, 6});
}

TEST_CASE("conv2d values on a hand-computed example - float32 and float64") {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    // 1x1x3x3 input 1..9, 2x2 kernel of ones, bias 0.5 -> window sums + 0.5
    const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, dtype);
    const Tensor w = Tensor::ones({1, 1, 2, 2}, dtype);
    const Tensor b = Tensor::from_vector({0.5}, {1}, dtype);
    CHECK(conv2d(x, w, b).to_vector() == std::vector<double>{12.5, 16.5, 24.5, 28.5});
    // transposed conv of a single 1 with stride 2 stamps the kernel
    const Tensor k = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, dtype);
    CHECK(conv_transpose2d(Tensor::ones({1, 1, 1, 1}, dtype), k, Tensor(), {2, 2}).to_vector() ==
          std::vector<double>{1, 2, 3, 4});
  }
}

TEST_CASE("conv2d and conv_transpose2d errors name the op and the shapes") {
  const Tensor x = Tensor::zeros({2, 3, 8, 8});
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 5, 3, 3})),
                       "conv2d: input float32[2, 3, 8, 8] on cpu has 3 channels but weight float32[4, 5, 3, 3] on "
                       "cpu expects 5 (groups 1)",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({8, 8}), Tensor::zeros({4, 3, 3, 3})),
                       "conv2d: expected a 3-d (unbatched CHW) or 4-d (batched NCHW) input, got float32[8, 8] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3})),
                       "conv2d: expected a 4-d weight [out_channels, in_channels/groups, kH, kW], got float32[4, 3, "
                       "3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::Float64)),
                       "conv2d: dtype mismatch: float32[2, 3, 8, 8] on cpu vs float64[4, 3, 3, 3] on cpu", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3})),
                       "conv2d: bias float32[3] on cpu must be 1-d with 4 elements (one per output channel)", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), {0, 1}),
                       "conv2d: stride must be positive, got (0, 1)", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), {1, 1}, {-1, 0}),
                       "conv2d: padding must be non-negative, got (-1, 0)", Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 0}),
                       "conv2d: dilation must be positive, got (1, 0)", Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({2, 4, 8, 8}), Tensor::zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {0, 0},
                              {1, 1}, 2),
                       "conv2d: weight float32[3, 2, 3, 3] on cpu has 3 output channels, which groups 2 does not "
                       "divide",
                       Error);
  CHECK_THROWS_WITH_AS(conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 0),
                       "conv2d: groups must be positive, got 0", Error);
  CHECK_THROWS_WITH_AS(conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({4, 3, 3, 3}), Tensor(), {1, 1}, {0, 0},
                              {2, 2}),
                       "conv2d: input float32[1, 3, 4, 4] on cpu padded by (0, 0) is 4x4, smaller than the dilated "
                       "kernel 5x5 of weight float32[4, 3, 3, 3] on cpu (dilation (2, 2))",
                       Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::zeros({4, 2, 3, 3})),
                       "conv_transpose2d: input float32[2, 3, 8, 8] on cpu has 3 channels but weight float32[4, 2, "
                       "3, 3] on cpu expects 4 (weight is [in_channels, out_channels/groups, kH, kW])",
                       Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::zeros({3, 2, 3})),
                       "conv_transpose2d: expected a 4-d weight [in_channels, out_channels/groups, kH, kW], got "
                       "float32[3, 2, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::zeros({3, 2, 3, 3}), Tensor(), {2, 2}, {0, 0}, {2, 0}),
                       "conv_transpose2d: output_padding (2, 0) must be non-negative and smaller than stride (2, 2) "
                       "or dilation (1, 1)",
                       Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(x, Tensor::zeros({3, 2, 3, 3}), Tensor::zeros({3})),
                       "conv_transpose2d: bias float32[3] on cpu must be 1-d with 2 elements (one per output "
                       "channel)",
                       Error);
  CHECK_THROWS_WITH_AS(conv_transpose2d(Tensor::zeros({1, 2, 1, 1}), Tensor::zeros({2, 1, 1, 1}), Tensor(), {1, 1},
                                        {1, 1}),
                       "conv_transpose2d: input float32[1, 2, 1, 1] on cpu with weight float32[2, 1, 1, 1] on cpu, "
                       "stride (1, 1), padding (1, 1), output_padding (0, 0) and dilation (1, 1) gives an empty "
                       "output -1x-1",
                       Error);
}
