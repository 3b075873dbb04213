#pragma once
// GradientChecker: float64 analytic gradients (autograd) against central finite
// differences, tolerance scaled by max(|analytic|, |numeric|, 1). The caller picks
// inputs away from kinks (relu at 0, max ties, clamp bounds), with away_from_kinks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/pneuma.h"

namespace pneuma::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double tolerance = 1e-6;
  uint64_t seed = 1234;
};

using Function = std::function<Tensor(const std::vector<Tensor>&)>;

// Uniform random float64 leaf in [lo, hi) that requires grad.
inline Tensor random_input(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0,
                           bool requires_grad = true) {
  std::vector<double> v = Tensor::rand(shape, seed, DType::Float64).to_vector();
  for (double& x : v) x = lo + (hi - lo) * x;
  Tensor t = Tensor::from_vector(v, shape, DType::Float64);
  t.set_requires_grad(requires_grad);
  return t;
}

// Moves every element at least `margin` away from each kink point.
inline Tensor away_from_kinks(const Tensor& t, const std::vector<double>& kinks, double margin = 0.05) {
  std::vector<double> v = t.to_vector();
  for (double& x : v)
    for (double k : kinks)
      if (std::abs(x - k) < margin) x = x < k ? k - margin : k + margin;
  Tensor out = Tensor::from_vector(v, t.shape(), t.dtype());
  out.set_requires_grad(t.requires_grad());
  return out;
}

// The scalar whose gradient is checked: sum(f(inputs) * w) with fixed random w, so
// every output element contributes with its own weight.
inline double weighted_sum(const Tensor& y, const Tensor& w) {
  const std::vector<double> a = y.to_vector(), b = w.to_vector();
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline void gradcheck(const Function& f, const std::vector<Tensor>& inputs, GradcheckOptions options = {}) {
  for (const Tensor& t : inputs) {
    REQUIRE(t.dtype() == DType::Float64);
    REQUIRE(t.is_contiguous());
  }
  for (const Tensor& t : inputs) t.set_grad(Tensor());
  const Tensor y = f(inputs);
  const Tensor w = Tensor::randn(y.shape(), options.seed, DType::Float64);
  y.backward(w);

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    REQUIRE_MESSAGE(x.grad().defined(), "input ", i, " received no gradient");
    const std::vector<double> analytic = x.grad().to_vector();
    double* data = x.data<double>();
    double worst = 0;
    int64_t worst_at = -1;
    double worst_a = 0, worst_n = 0;
    for (int64_t j = 0; j < x.numel(); ++j) {
      const double saved = data[j];
      double plus, minus;
      {
        NoGradGuard no_grad;
        data[j] = saved + options.eps;
        plus = weighted_sum(f(inputs), w);
        data[j] = saved - options.eps;
        minus = weighted_sum(f(inputs), w);
      }
      data[j] = saved;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double scale = std::max({std::abs(analytic[j]), std::abs(numeric), 1.0});
      const double err = std::abs(analytic[j] - numeric) / scale;
      if (err > worst) {
        worst = err;
        worst_at = j;
        worst_a = analytic[j];
        worst_n = numeric;
      }
    }
    std::ostringstream where;
    where << "input " << i << " " << x.str() << ": worst element " << worst_at << " analytic " << worst_a
          << " numeric " << worst_n << " scaled error " << worst;
    CHECK_MESSAGE(worst <= options.tolerance, where.str());
  }
}

// |a - b| <= atol + rtol * |b| elementwise, with the worst element in the message.
inline void check_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-5, double atol = 1e-6) {
  REQUIRE_MESSAGE(actual.shape() == expected.shape(), "shape ", shape_str(actual.shape()), " vs ",
                  shape_str(expected.shape()));
  const std::vector<double> a = actual.to_vector(), b = expected.to_vector();
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double excess = std::abs(a[i] - b[i]) - (atol + rtol * std::abs(b[i]));
    if (!(excess <= worst)) {
      worst = std::isnan(excess) ? INFINITY : excess;
      worst_at = i;
    }
  }
  CHECK_MESSAGE(worst <= 0, "element ", worst_at, ": ", (a.empty() ? 0 : a[worst_at]), " vs ",
                (b.empty() ? 0 : b[worst_at]));
}

// |actual - expected| <= relative * |expected| + fraction * max|expected| per element (a tolerance
// scaled to the result's magnitude), reporting the first element outside; an all-zero `expected`
// fails, as it would make the check vacuous. Dtypes are the caller's to check.
inline void require_near_scaled(const Tensor& expected, const Tensor& actual, double relative, double fraction,
                                const std::string& what) {
  CAPTURE(what);
  REQUIRE(actual.defined());
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  double largest = 0;
  for (double v : e) largest = std::max(largest, std::abs(v));
  REQUIRE(largest > 0);
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::abs(a[i] - e[i]) <= relative * std::abs(e[i]) + fraction * largest) continue;
    CAPTURE(i);
    CAPTURE(e[i]);
    CAPTURE(a[i]);
    CAPTURE(largest);
    FAIL("element outside " << relative << " * |expected| + " << fraction << " * max|expected|");
  }
}

}  // namespace pneuma::testing
