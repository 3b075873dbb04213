#pragma once
// `parity cuda <op>` tests: an op on CUDA tensors against the same op on the CPU (the reference),
// forward and backward. Each test starts with PNEUMA_REQUIRE_GPU(), so without a GPU it is
// reported as skipped. CUDA's math library and the CPU's libm may differ by a few ulp, and
// reductions add in another order, hence the tolerances.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "engine/pneuma.h"
#include "tests/support/cuda.h"

namespace pneuma::testing {

inline double parity_tolerance(DType dtype) { return dtype == DType::Float32 ? 2e-5 : 1e-11; }

inline void require_close_to(const Tensor& expected, const Tensor& actual, double tolerance, const char* what) {
  CAPTURE(what);
  REQUIRE(actual.shape() == expected.shape());
  REQUIRE(actual.dtype() == expected.dtype());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  for (size_t i = 0; i < e.size(); ++i) {
    CAPTURE(i);
    if (std::isnan(e[i])) {
      REQUIRE(std::isnan(a[i]));
      continue;
    }
    REQUIRE(std::fabs(e[i] - a[i]) <= tolerance * (1 + std::fabs(e[i])));
  }
}

// Uniform values in [lo, hi) as `dtype` on the CPU.
inline Tensor parity_input(const Shape& shape, uint64_t seed, DType dtype, double lo = -1, double hi = 1) {
  std::vector<double> v = Tensor::rand(shape, seed, DType::Float64).to_vector();
  for (double& x : v) x = lo + (hi - lo) * x;
  return Tensor::from_vector(v, shape, dtype);
}

// float32 inputs holding bfloat16-exact values, for the bfloat16 parity tests: the op runs on
// to_bf16(x) on both devices, and each side's result comes back as to_f32 (differentiable casts).
inline Tensor bf16_exact_input(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return parity_input(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16).to(DType::Float32);
}
inline Tensor to_bf16(const Tensor& t) { return t.to(DType::BFloat16); }
inline Tensor to_f32(const Tensor& t) { return t.to(DType::Float32); }
// One bfloat16 ulp relative to the value: two devices may round one float result differently.
inline constexpr double kBf16ParityTolerance = 0x1p-7;

using ParityFunction = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on `inputs` (CPU tensors) and on CUDA copies of them; compares the outputs and, when the
// output is a float tensor, the inputs' gradients of sum(f(inputs) * w) for a fixed random w.
// Float inputs get requires_grad; others (masks, indices) are moved as they are.
inline void check_cuda_parity(const ParityFunction& f, const std::vector<Tensor>& inputs, double tolerance = -1) {
  std::vector<Tensor> cpu_inputs, cuda_inputs;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone(), g = t.detach().to(Device::cuda());
    if (is_floating(t.dtype())) {
      c.set_requires_grad(true);
      g.set_requires_grad(true);
    }
    cpu_inputs.push_back(c);
    cuda_inputs.push_back(g);
  }
  const Tensor expected = f(cpu_inputs);
  const Tensor actual = f(cuda_inputs);
  REQUIRE(actual.device() == Device::cuda());
  const double tol = tolerance >= 0 ? tolerance : parity_tolerance(expected.dtype() == DType::Bool ? inputs[0].dtype() : expected.dtype());
  require_close_to(expected, actual.to(Device::cpu()), tol, "output");
  if (!is_floating(expected.dtype()) || !expected.requires_grad()) return;
  const Tensor w = parity_input(expected.shape(), 99, expected.dtype());
  sum(mul(expected, w)).backward();
  sum(mul(actual, w.to(Device::cuda()))).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!cpu_inputs[i].grad().defined()) continue;
    REQUIRE(cuda_inputs[i].grad().defined());
    CHECK(cuda_inputs[i].grad().device() == Device::cuda());
    require_close_to(cpu_inputs[i].grad(), cuda_inputs[i].grad().to(Device::cpu()), tol, "gradient");
  }
}

}  // namespace pneuma::testing
