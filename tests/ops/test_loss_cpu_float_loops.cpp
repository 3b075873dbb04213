// The float32 CPU loops of the losses use their own vectorized exp, log and row maximum
// (engine/ops/loss/loss_cpu.cpp); float64 keeps libm. At shapes wide enough for the vector
// loops and their tails (odd class counts, rows past one 8-lane vector, chunk and block
// boundaries) with extreme logits, infinities and NaN, float32 results and gradients must
// equal float64's to float32 rounding, and NaN must stay where torch puts it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/pneuma.h"

using namespace pneuma;

namespace {

// Uniform values in [lo, hi), deterministic.
std::vector<double> spread(int64_t n, double lo, double hi, uint64_t seed) {
  std::vector<double> v(static_cast<size_t>(n));
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (double& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = lo + (hi - lo) * static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  return v;
}

struct Result {
  std::vector<double> loss, grad;
};

// loss_fn(x) in float32 and float64 on the same values: its output and d(sum of output)/dx.
template <class Fn>
std::pair<Result, Result> both_precisions(const std::vector<double>& values, const Shape& shape, Fn loss_fn) {
  // Both run on the float32-rounded values.
  std::vector<double> rounded(values.size());
  for (size_t i = 0; i < values.size(); ++i) rounded[i] = static_cast<float>(values[i]);
  auto run = [&](DType dtype) {
    Tensor x = Tensor::from_vector(rounded, shape, dtype);
    x.set_requires_grad(true);
    const Tensor out = loss_fn(x);
    sum(out).backward();
    return Result{out.to_vector(), x.grad().to_vector()};
  };
  return {run(DType::Float32), run(DType::Float64)};
}

void check_close(const std::vector<double>& f32, const std::vector<double>& f64, double rtol, double atol,
                 const char* what) {
  REQUIRE(f32.size() == f64.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    CAPTURE(what);
    CAPTURE(i);
    if (!std::isfinite(f64[i])) {
      CHECK((std::isnan(f64[i]) ? std::isnan(f32[i]) : f32[i] == f64[i]));
      continue;
    }
    CHECK(std::abs(f32[i] - f64[i]) <= atol + rtol * std::abs(f64[i]));
  }
}

}  // namespace

TEST_SUITE("parity") {
  TEST_CASE("float loops cross_entropy wide rows against float64") {
    const int64_t rows = 37, classes = 1003;
    std::vector<double> x = spread(rows * classes, -30, 30, 1);
    for (int64_t c = 0; c < classes; c += 7) x[static_cast<size_t>(5 * classes + c)] = -INFINITY;  // exp gives 0
    x[static_cast<size_t>(9 * classes + 500)] = 80;    // one logit far above the rest
    x[static_cast<size_t>(11 * classes + 17)] = NAN;   // a NaN row stays NaN
    std::vector<int64_t> y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) y[static_cast<size_t>(r)] = (r * 131) % classes;
    const Tensor target = Tensor::from_indices(y, {rows});
    for (double smoothing : {0.0, 0.1}) {
      CAPTURE(smoothing);
      const auto [f32, f64] = both_precisions(x, {rows, classes}, [&](const Tensor& t) {
        return cross_entropy(t, target, Tensor(), -100, Reduction::None, smoothing);
      });
      check_close(f32.loss, f64.loss, 1e-5, 1e-5, "loss");
      check_close(f32.grad, f64.grad, 1e-5, 1e-6, "grad");
      CHECK(std::isnan(f32.loss[11]));
      if (smoothing == 0) CHECK(std::isfinite(f32.loss[5]));  // smoothing adds -log p_c = inf for the -inf logits
    }
  }

  TEST_CASE("float loops binary_cross_entropy_with_logits against float64") {
    // Past one 4096-element block and one 256-element chunk, with |x| up to 100 and a NaN.
    const int64_t n = 9001;
    std::vector<double> x = spread(n, -100, 100, 2);
    for (int64_t i = 0; i < 200; ++i) x[static_cast<size_t>(i)] = spread(200, -3, 3, 3)[static_cast<size_t>(i)];
    x[4321] = NAN;
    const Tensor t32 = Tensor::from_vector(spread(n, 0, 1, 4), {n}, DType::Float32);
    const Tensor t64 = t32.to(DType::Float64);
    const Tensor pw32 = Tensor::from_vector(spread(n, 0.5, 3, 5), {n}, DType::Float32);
    const Tensor pw64 = pw32.to(DType::Float64);
    const auto [f32, f64] = both_precisions(x, {n}, [&](const Tensor& v) {
      const bool single = v.dtype() == DType::Float32;
      return binary_cross_entropy_with_logits(v, single ? t32 : t64, Tensor(), Reduction::None, single ? pw32 : pw64);
    });
    check_close(f32.loss, f64.loss, 2e-6, 2e-5, "loss");  // (1 - t) x + lw softplus(-x) cancels at |x| ~ 100
    check_close(f32.grad, f64.grad, 2e-6, 1e-6, "grad");
    CHECK(std::isnan(f32.loss[4321]));
    // The mean's blocked sum: float32's equals float64's to rounding.
    const std::vector<double> finite(x.begin(), x.begin() + 4000);
    const auto [m32, m64] = both_precisions(finite, {4000}, [&](const Tensor& v) {
      const bool single = v.dtype() == DType::Float32;
      return binary_cross_entropy_with_logits(v, (single ? t32 : t64).slice(0, 0, 4000));
    });
    CHECK(m32.loss[0] == doctest::Approx(m64.loss[0]).epsilon(1e-6));
  }

  TEST_CASE("float loops sigmoid_focal_loss against float64") {
    const int64_t n = 5000;
    const std::vector<double> x = spread(n, -60, 60, 7);
    const Tensor t32 = Tensor::from_vector(spread(n, 0, 1, 8), {n}, DType::Float32);
    const Tensor t64 = t32.to(DType::Float64);
    for (double gamma : {2.0, 1.0, 0.0, 1.5})  // 1.5: the libm path
      for (double alpha : {0.25, -1.0}) {
        CAPTURE(gamma);
        CAPTURE(alpha);
        const auto [f32, f64] = both_precisions(x, {n}, [&](const Tensor& v) {
          return sigmoid_focal_loss(v, v.dtype() == DType::Float32 ? t32 : t64, alpha, gamma, Reduction::None);
        });
        check_close(f32.loss, f64.loss, 1e-5, 2e-5, "loss");
        check_close(f32.grad, f64.grad, 1e-5, 2e-6, "grad");
      }
  }

  TEST_CASE("float loops nt_xent against float64") {
    const int64_t n = 2 * 151, d = 19;
    const auto [f32, f64] = both_precisions(spread(n * d, -2, 2, 6), {n, d},
                                            [](const Tensor& z) { return nt_xent_loss(z, 0.05); });
    check_close(f32.loss, f64.loss, 1e-5, 1e-6, "loss");
    check_close(f32.grad, f64.grad, 1e-4, 1e-6, "grad");
  }
}
