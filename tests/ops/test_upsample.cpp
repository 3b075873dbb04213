#include <doctest/doctest.h>

#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck upsample") {
    SUBCASE("nearest") {
      gradcheck([](const auto& x) { return upsample_nearest2d(x[0], {7, 11}); }, {random_input({2, 2, 4, 5}, 1)});
      gradcheck([](const auto& x) { return upsample_nearest2d(x[0], {3, 2}); }, {random_input({1, 2, 7, 5}, 2)});
      gradcheck([](const auto& x) { return interpolate(x[0], std::nullopt, std::array<double, 2>{2, 2}, "nearest"); },
                {random_input({1, 2, 3, 4}, 3)});
      gradcheck([](const auto& x) { return interpolate(x[0], std::nullopt, std::array<double, 2>{1.7, 0.6}, "nearest"); },
                {random_input({2, 1, 5, 7}, 4)});
    }
    SUBCASE("bilinear") {
      for (bool align : {false, true}) {
        CAPTURE(align);
        gradcheck([=](const auto& x) { return upsample_bilinear2d(x[0], {7, 9}, align); }, {random_input({2, 2, 4, 5}, 5)});
        gradcheck([=](const auto& x) { return upsample_bilinear2d(x[0], {3, 4}, align); }, {random_input({1, 2, 7, 6}, 6)});
        gradcheck([=](const auto& x) { return upsample_bilinear2d(x[0], {1, 5}, align); }, {random_input({1, 1, 4, 3}, 7)});
        gradcheck([=](const auto& x) {
          return interpolate(x[0], std::nullopt, std::array<double, 2>{1.7, 0.6}, "bilinear", align);
        }, {random_input({1, 2, 5, 7}, 8)});
      }
    }
  }
}

TEST_CASE("upsample values") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 2, 2}, dtype);
    CHECK(upsample_nearest2d(x, {4, 4}).to_vector() ==
          std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
    CHECK(upsample_nearest2d(x, {1, 3}).to_vector() == std::vector<double>{1, 1, 2});
    // align_corners: the corners are kept and the middle is the exact average
    const Tensor a = upsample_bilinear2d(x, {3, 3}, true);
    check_close(a, Tensor::from_vector({1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}, {1, 1, 3, 3}, DType::Float64));
    // half-pixel centers: 2 -> 4 samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last: clamps)
    const Tensor b = upsample_bilinear2d(Tensor::from_vector({0, 4}, {1, 1, 1, 2}, dtype), {1, 4}, false);
    check_close(b, Tensor::from_vector({0, 1, 3, 4}, {1, 1, 1, 4}, DType::Float64));
  }
}

TEST_SUITE("parity") {
  TEST_CASE("parity upsample_nearest2d") {
    using S = std::array<double, 2>;
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double tol = dtype == DType::Float64 ? 1e-12 : 1e-6;
      check_parity("upsample_nearest_size_up", [](const auto& x) { return upsample_nearest2d(x[0], {7, 11}); }, dtype,
                   tol, tol);
      check_parity("upsample_nearest_size_down",
                   [](const auto& x) { return interpolate(x[0], std::array<int64_t, 2>{3, 2}, std::nullopt); }, dtype,
                   tol, tol);
      check_parity("upsample_nearest_scale2",
                   [](const auto& x) { return interpolate(x[0], std::nullopt, S{2, 2}, "nearest"); }, dtype, tol, tol);
      check_parity("upsample_nearest_scale_fractional",
                   [](const auto& x) { return interpolate(x[0], std::nullopt, S{1.7, 0.6}, "nearest"); }, dtype, tol,
                   tol);
    }
  }
  TEST_CASE("parity upsample_bilinear2d") {
    using S = std::array<double, 2>;
    using I = std::array<int64_t, 2>;
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-12 : 1e-5, atol = dtype == DType::Float64 ? 1e-12 : 1e-6;
      check_parity("upsample_bilinear_size_up", [](const auto& x) { return upsample_bilinear2d(x[0], {7, 9}, false); },
                   dtype, rtol, atol);
      check_parity("upsample_bilinear_size_up_align",
                   [](const auto& x) { return upsample_bilinear2d(x[0], {7, 9}, true); }, dtype, rtol, atol);
      check_parity("upsample_bilinear_size_down",
                   [](const auto& x) { return interpolate(x[0], I{3, 4}, std::nullopt, "bilinear", false); }, dtype,
                   rtol, atol);
      check_parity("upsample_bilinear_size_down_align",
                   [](const auto& x) { return interpolate(x[0], I{1, 4}, std::nullopt, "bilinear", true); }, dtype,
                   rtol, atol);
      check_parity("upsample_bilinear_scale2",
                   [](const auto& x) { return interpolate(x[0], std::nullopt, S{2, 2}, "bilinear"); }, dtype, rtol,
                   atol);
      check_parity("upsample_bilinear_scale_fractional",
                   [](const auto& x) { return interpolate(x[0], std::nullopt, S{1.7, 0.6}, "bilinear", false); },
                   dtype, rtol, atol);
      check_parity("upsample_bilinear_scale_fractional_recompute", [](const auto& x) {
        return interpolate(x[0], std::nullopt, S{1.7, 0.6}, "bilinear", false, true);
      }, dtype, rtol, atol);
    }
  }
}

TEST_CASE("upsample errors name the op and the offending values") {
  using S = std::array<double, 2>;
  using I = std::array<int64_t, 2>;
  const Tensor x = Tensor::zeros({1, 2, 4, 4});
  CHECK_THROWS_WITH_AS(upsample_nearest2d(x, {0, 3}),
                       "upsample_nearest2d: output size must be positive, got [0, 3] for input float32[1, 2, 4, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(upsample_bilinear2d(Tensor::zeros({2, 4, 4}), {8, 8}, false),
                       "upsample_bilinear2d: expected a 4-d [N, C, H, W] input, got float32[2, 4, 4] on cpu", Error);
  CHECK_THROWS_WITH_AS(interpolate(x, I{8, 8}, S{2, 2}), "interpolate: only one of size and scale_factor should be given",
                       Error);
  CHECK_THROWS_WITH_AS(interpolate(x, std::nullopt, std::nullopt), "interpolate: either size or scale_factor should be given",
                       Error);
  CHECK_THROWS_WITH_AS(interpolate(x, I{8, 8}, std::nullopt, "nearest", true),
                       "interpolate: align_corners can only be set with mode 'bilinear', not 'nearest'", Error);
  CHECK_THROWS_WITH_AS(interpolate(x, I{8, 8}, std::nullopt, "bicubic"),
                       "interpolate: mode 'bicubic' is not supported (expected 'nearest' or 'bilinear')", Error);
  CHECK_THROWS_WITH_AS(interpolate(x, std::nullopt, S{0.1, 2}),
                       "interpolate: scale_factor [0.1, 2] gives an empty output for input float32[1, 2, 4, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(interpolate(x, std::nullopt, S{-1, 2}),
                       "interpolate: scale_factor must be positive and finite, got [-1, 2]", Error);
}
