#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>

#include "engine/ops/pool/pool_onednn.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

namespace {

// A float64 leaf whose values are a scaled random permutation: no ties, and neighbours
// in value order 4 / numel apart, far more than the gradcheck step.
Tensor distinct_input(const Shape& shape, uint64_t seed) {
  const std::vector<double> r = Tensor::rand(shape, seed, DType::Float64).to_vector();
  std::vector<size_t> order(r.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r[a] < r[b]; });
  std::vector<double> v(r.size());
  for (size_t rank = 0; rank < order.size(); ++rank) v[order[rank]] = 4.0 * rank / r.size() - 2.0;
  Tensor t = Tensor::from_vector(v, shape, DType::Float64);
  t.set_requires_grad(true);
  return t;
}

using A2 = std::array<int64_t, 2>;

kern::Pool2d geometry(const Shape& shape, A2 k, A2 s, A2 p, A2 d, bool ceil) {
  kern::Pool2d g;
  g.N = shape.size() == 4 ? shape[0] : 1;
  g.C = shape[shape.size() - 3];
  g.ih = shape[shape.size() - 2];
  g.iw = shape[shape.size() - 1];
  g.kh = k[0], g.kw = k[1], g.sh = s[0], g.sw = s[1], g.ph = p[0], g.pw = p[1], g.dh = d[0], g.dw = d[1];
  g.oh = kern::pool_output_size(g.ih, g.kh, g.ph, g.sh, g.dh, ceil);
  g.ow = kern::pool_output_size(g.iw, g.kw, g.pw, g.sw, g.dw, ceil);
  return g;
}

// Turns the fast path on for a test whatever PNEUMA_DISABLE_ONEDNN says, so the
// comparison is never vacuous.
struct FastPathOn {
  bool previous = cpu::fast_path_enabled();
  FastPathOn() { cpu::set_fast_path_enabled(true); }
  ~FastPathOn() { cpu::set_fast_path_enabled(previous); }
};

}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck max_pool2d") {
    gradcheck([](const auto& x) { return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); }, {distinct_input({2, 2, 7, 8}, 1)});
    gradcheck([](const auto& x) { return max_pool2d(x[0], {2, 2}); }, {distinct_input({1, 3, 6, 6}, 2)});
    // dilation 2, asymmetric kernel/stride/padding, ceil mode (the last window hangs over)
    gradcheck([](const auto& x) { return max_pool2d(x[0], {3, 2}, {2, 3}, {1, 1}, {2, 1}, true); },
              {distinct_input({2, 2, 9, 10}, 3)});
    gradcheck([](const auto& x) { return max_pool2d(x[0], {2, 2}, {2, 2}, {0, 0}, {1, 1}, true); },
              {distinct_input({1, 2, 5, 7}, 4)});
    // unbatched [C, H, W]; overlapping windows (stride 1) send several gradients to one input
    gradcheck([](const auto& x) { return max_pool2d(x[0], {3, 3}, {1, 1}, {1, 1}); }, {distinct_input({2, 5, 5}, 5)});
    gradcheck([](const auto& x) { return max_pool2d_with_indices(x[0], {3, 3}, {2, 2}, {1, 1}, {2, 2}, true).first; },
              {distinct_input({1, 2, 8, 9}, 6)});
  }
  TEST_CASE("gradcheck avg_pool2d") {
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {2, 2}); }, {random_input({2, 2, 6, 6}, 1)});
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); }, {random_input({2, 2, 7, 8}, 2)});
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}, false, false); },
              {random_input({2, 2, 7, 8}, 3)});
    // ceil mode with both divisor rules: windows hanging past the padded input
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}, true, true); },
              {random_input({1, 2, 8, 7}, 4)});
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}, true, false); },
              {random_input({1, 2, 8, 7}, 5)});
    gradcheck([](const auto& x) { return avg_pool2d(x[0], {3, 3}, {2, 1}, {1, 0}, false, true, 5); },
              {random_input({2, 6, 5}, 6)});
  }
  TEST_CASE("gradcheck adaptive_avg_pool2d") {
    gradcheck([](const auto& x) { return adaptive_avg_pool2d(x[0], {3, 2}); }, {random_input({2, 2, 7, 5}, 1)});
    gradcheck([](const auto& x) { return adaptive_avg_pool2d(x[0], {1, 1}); }, {random_input({2, 3, 4, 5}, 2)});
    gradcheck([](const auto& x) { return adaptive_avg_pool2d(x[0], {5, 7}); }, {random_input({2, 3, 4}, 3)});
  }
}

TEST_CASE("max_pool2d values and PyTorch indices") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype_name(dtype));
    // 4x4 plane 0..15 with a tie (two 20s) in the first window.
    const Tensor x = Tensor::from_vector({20, 1, 2, 3, 4, 20, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {1, 1, 4, 4}, dtype);
    auto [y, idx] = max_pool2d_with_indices(x, {2, 2});
    CHECK(y.to_vector() == std::vector<double>{20, 7, 13, 15});
    CHECK(idx.dtype() == DType::Int64);
    CHECK(idx.to_indices() == std::vector<int64_t>{0, 7, 13, 15});  // the tie goes to the first maximum
    CHECK(max_pool2d(x, {2, 2}).to_vector() == y.to_vector());
    // padding is -inf: a 3x3 window at the corner sees only the input
    const Tensor n = Tensor::from_vector({-5, -6, -7, -8}, {1, 1, 2, 2}, dtype);
    CHECK(max_pool2d(n, {3, 3}, {1, 1}, {1, 1}).to_vector() == std::vector<double>{-5, -5, -5, -5});
    // ceil mode adds a last, partial window
    CHECK(max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1}, true).shape() == Shape{1, 1, 2, 2});
    CHECK(max_pool2d(x, {3, 3}, {2, 2}, {0, 0}, {1, 1}, false).shape() == Shape{1, 1, 1, 1});
  }
}

TEST_CASE("avg_pool2d and adaptive_avg_pool2d values") {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}, DType::Float64);
  // corner window with padding 1 covers 4 inputs out of 9 cells
  CHECK(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false, true).to_vector()[0] == doctest::Approx(12.0 / 9));
  CHECK(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false, false).to_vector()[0] == doctest::Approx(3.0));
  CHECK(avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false, true, 2).to_vector()[0] == doctest::Approx(6.0));
  // 3 -> 2 adaptive bins: [0, 2) and [1, 3) overlap in the middle row/column
  CHECK(adaptive_avg_pool2d(x, {2, 2}).to_vector() == std::vector<double>{3, 4, 6, 7});
  CHECK(adaptive_avg_pool2d(x, {1, 1}).to_vector() == std::vector<double>{5});
}

TEST_SUITE("fastpath") {
  TEST_CASE("fastpath max_pool2d") {
    FastPathOn on;
    struct Config {
      Shape shape;
      A2 k, s, p, d;
      bool ceil;
    };
    for (const Config& c : {Config{{2, 8, 32, 32}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},
                            Config{{2, 4, 9, 9}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},
                            Config{{2, 4, 9, 10}, {3, 2}, {2, 3}, {1, 1}, {2, 1}, true},
                            Config{{1, 3, 7, 7}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, true},
                            Config{{3, 11, 12}, {3, 3}, {1, 1}, {1, 1}, {2, 2}, false}}) {
      CAPTURE(shape_str(c.shape));
      REQUIRE(cpu::max_pool2d_onednn_supported(geometry(c.shape, c.k, c.s, c.p, c.d, c.ceil), true));
      REQUIRE(cpu::max_pool2d_onednn_supported(geometry(c.shape, c.k, c.s, c.p, c.d, c.ceil), false));
      const Tensor x0 = Tensor::randn(c.shape, 7, DType::Float32);
      auto run = [&](bool fast, bool grad) {
        std::optional<cpu::FastPathGuard> guard;
        if (!fast) guard.emplace();
        Tensor x = x0.clone().set_requires_grad(grad);
        Tensor y = max_pool2d(x, c.k, c.s, c.p, c.d, c.ceil);
        if (!grad) return std::pair{y, Tensor()};
        y.backward(Tensor::randn(y.shape(), 8, DType::Float32));
        return std::pair{y, x.grad()};
      };
      const auto [yf, dxf] = run(true, true);
      const auto [yr, dxr] = run(false, true);
      check_close(yf, yr, 0, 0);
      check_close(dxf, dxr, 1e-6, 1e-6);
      check_close(run(true, false).first, yr, 0, 0);  // the inference primitive, no workspace
    }
  }
  TEST_CASE("fastpath avg_pool2d") {
    FastPathOn on;
    struct Config {
      Shape shape;
      A2 k, s, p;
      bool ceil, include_pad;
      std::optional<int64_t> divisor;
      bool onednn;  // whether oneDNN takes it (else the reference loops do)
    };
    for (const Config& c : {Config{{2, 8, 16, 16}, {2, 2}, {2, 2}, {0, 0}, false, true, std::nullopt, true},
                            Config{{2, 4, 9, 10}, {3, 3}, {1, 1}, {1, 1}, false, true, std::nullopt, true},
                            Config{{2, 4, 9, 10}, {3, 3}, {2, 2}, {1, 1}, false, false, std::nullopt, true},
                            Config{{2, 4, 8, 7}, {3, 2}, {2, 2}, {1, 1}, true, false, std::nullopt, true},
                            // ceil mode past the padded input with count_include_pad, and a divisor
                            // override: oneDNN would differ from PyTorch, the reference loops run
                            Config{{2, 4, 8, 7}, {3, 2}, {2, 2}, {1, 1}, true, true, std::nullopt, false},
                            Config{{2, 4, 8, 7}, {3, 3}, {2, 2}, {1, 1}, false, true, 4, false}}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.ceil);
      CAPTURE(c.include_pad);
      CHECK(cpu::avg_pool2d_onednn_supported(geometry(c.shape, c.k, c.s, c.p, {1, 1}, c.ceil),
                                             {c.include_pad, c.divisor}) == c.onednn);
      const Tensor x0 = Tensor::randn(c.shape, 9, DType::Float32);
      auto run = [&](bool fast) {
        std::optional<cpu::FastPathGuard> guard;
        if (!fast) guard.emplace();
        Tensor x = x0.clone().set_requires_grad(true);
        Tensor y = avg_pool2d(x, c.k, c.s, c.p, c.ceil, c.include_pad, c.divisor);
        y.backward(Tensor::randn(y.shape(), 10, DType::Float32));
        return std::pair{y, x.grad()};
      };
      const auto [yf, dxf] = run(true);
      const auto [yr, dxr] = run(false);
      check_close(yf, yr, 1e-5, 1e-6);
      check_close(dxf, dxr, 1e-5, 1e-6);
    }
  }
}

TEST_SUITE("parity") {
  TEST_CASE("parity max_pool2d") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double tol = dtype == DType::Float64 ? 1e-12 : 1e-6;
      check_parity("max_pool2d_k3_s2_p1", [](const auto& x) { return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); },
                   dtype, tol, tol);
      check_parity("max_pool2d_dilation_ceil", [](const auto& x) {
        return max_pool2d(x[0], {3, 2}, {2, 3}, {1, 1}, {2, 1}, true);
      }, dtype, tol, tol);
      check_parity("max_pool2d_unbatched", [](const auto& x) { return max_pool2d(x[0], {2, 2}); }, dtype, tol, tol);
      check_parity("max_pool2d_indices", [](const auto& x) {
        return max_pool2d_with_indices(x[0], {3, 3}, {2, 2}, {1, 1}, {2, 2}, true).second;
      }, dtype, 0, 0);
    }
  }
  TEST_CASE("parity avg_pool2d") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-12 : 1e-5, atol = dtype == DType::Float64 ? 1e-12 : 1e-6;
      check_parity("avg_pool2d_k3_s2_p1", [](const auto& x) { return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); },
                   dtype, rtol, atol);
      check_parity("avg_pool2d_ceil_include_pad", [](const auto& x) {
        return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}, true, true);
      }, dtype, rtol, atol);
      check_parity("avg_pool2d_ceil_exclude_pad", [](const auto& x) {
        return avg_pool2d(x[0], {3, 2}, {2, 2}, {1, 1}, true, false);
      }, dtype, rtol, atol);
      check_parity("avg_pool2d_divisor_override", [](const auto& x) {
        return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}, false, true, 5);
      }, dtype, rtol, atol);
      check_parity("avg_pool2d_k2", [](const auto& x) { return avg_pool2d(x[0], {2, 2}); }, dtype, rtol, atol);
    }
  }
  TEST_CASE("parity adaptive_avg_pool2d") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-12 : 1e-5, atol = dtype == DType::Float64 ? 1e-12 : 1e-6;
      check_parity("adaptive_avg_pool2d_7x5_to_3x2", [](const auto& x) { return adaptive_avg_pool2d(x[0], {3, 2}); },
                   dtype, rtol, atol);
      check_parity("adaptive_avg_pool2d_1x1", [](const auto& x) { return adaptive_avg_pool2d(x[0], {1, 1}); }, dtype,
                   rtol, atol);
      check_parity("adaptive_avg_pool2d_up_unbatched",
                   [](const auto& x) { return adaptive_avg_pool2d(x[0], {5, 7}); }, dtype, rtol, atol);
    }
  }
}

TEST_CASE("pooling errors name the op and the offending values") {
  const Tensor x = Tensor::zeros({1, 1, 2, 2});
  CHECK_THROWS_WITH_AS(max_pool2d(x, {3, 3}),
                       "max_pool2d: input float32[1, 1, 2, 2] on cpu is too small for kernel_size [3, 3] with padding "
                       "[0, 0] and dilation [1, 1]: the output would be 0 x 0",
                       Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {2, 2}, {0, 0}, {2, 0}),
                       "max_pool2d: padding [2, 0] should be at most half of kernel_size [2, 2]", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {0, 2}), "max_pool2d: kernel_size must be positive, got [0, 2]", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {2, 2}, {1, 0}),
                       "max_pool2d: stride must be positive (or {0, 0} for kernel_size), got [1, 0]", Error);
  CHECK_THROWS_WITH_AS(max_pool2d(x, {2, 2}, {0, 0}, {0, 0}, {0, 1}), "max_pool2d: dilation must be positive, got [0, 1]",
                       Error);
  CHECK_THROWS_WITH_AS(max_pool2d_with_indices(Tensor::zeros({4, 4}), {2, 2}),
                       "max_pool2d_with_indices: expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got float32[4, 4] "
                       "on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(Tensor::zeros({2, 0, 4, 4}), {2, 2}),
                       "avg_pool2d: expected non-zero channels, height and width, got input float32[2, 0, 4, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(avg_pool2d(x, {2, 2}, {0, 0}, {0, 0}, false, true, 0), "avg_pool2d: divisor_override must be non-zero",
                       Error);
  CHECK_THROWS_WITH_AS(adaptive_avg_pool2d(x, {0, 3}),
                       "adaptive_avg_pool2d: output_size must be positive, got [0, 3] for input float32[1, 1, 2, 2] on cpu",
                       Error);
  CHECK_THROWS_AS(avg_pool2d(Tensor::zeros({1, 1, 4, 4}, DType::Int64), {2, 2}), Error);
}
