#pragma once
// Inputs, the float32-oracle comparison and the torch comparison of the bfloat16 op tests
// (tests/ops/test_bf16_*.cpp, tests/kernels/test_bf16_softmax_upsample_kernels.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/core/tensor.h"
#include "tests/data/data_util.h"
#include "tests/kernels/kernel_check.h"

namespace pneuma::testing {

inline constexpr double kBf16TwoUlps = 1.6e-2;  // 2 bfloat16 ulps (2^-7 relative, rounded up)
// The largest error of one rounding to bfloat16 relative to the value: half an ulp, 2^-8 (8
// significant bits: the ulp of a value in [2^e, 2^(e+1)) is 2^(e-7)).
inline constexpr double kHalfUlp = 0x1p-8;

// t widened to float32 (exact), without history: the oracle's input.
inline Tensor f32(const Tensor& t) { return t.detach().to(DType::Float32); }

// Values uniform in [lo, hi) rounded to bfloat16.
inline Tensor bf16_values(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  return uniform_values(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16);
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

// actual (bfloat16) is the float32 oracle rounded to bfloat16, bit for bit: an op that computes in
// float and rounds once.
inline void require_rounded_oracle(const Tensor& actual, const Tensor& oracle) {
  REQUIRE(actual.dtype() == DType::BFloat16);
  REQUIRE(oracle.dtype() == DType::Float32);
  require_same_bits(oracle.to(DType::BFloat16), actual);
}

// |actual - expected| <= atol + rtol * |expected| for every element; actual is bfloat16 and
// expected the float32 oracle.
inline void require_bf16_close(const Tensor& expected, const Tensor& actual, double atol, const std::string& what,
                               double rtol = kBf16TwoUlps) {
  CAPTURE(what);
  REQUIRE(actual.dtype() == DType::BFloat16);
  REQUIRE(expected.dtype() == DType::Float32);
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  for (size_t i = 0; i < e.size(); ++i) {
    CAPTURE(i);
    CAPTURE(e[i]);
    CAPTURE(a[i]);
    REQUIRE(std::isfinite(a[i]));
    REQUIRE(std::fabs(a[i] - e[i]) <= atol + rtol * std::fabs(e[i]));
  }
}

// One op compared with torch 1.13 on bfloat16 leaves: `name` (and `args`) tell the script what to
// run; the atols bound the difference from torch's output and input gradients (on top of the
// 2-ulp rtol).
struct TorchBf16Case {
  std::string name;
  nlohmann::json args;
  std::function<Tensor(const std::vector<Tensor>&)> f;
  std::vector<Tensor> inputs;
  double output_atol, grad_atol;
};

// Runs every case here (backward from a bfloat16 gradient on a 1/8 grid, seeded from grad_seed:
// products with it carry few bits), sends the inputs and gradients to `script` (under
// tests/ops/, reading a JSON request [{op, args, inputs, grad}], answering [{output, grads}]),
// and compares outputs and gradients with torch's values, widened exactly.
inline void require_close_to_torch(const std::string& script, const std::vector<TorchBf16Case>& cases,
                                   uint64_t grad_seed) {
  const auto to_json = [](const Tensor& t) { return nlohmann::json{{"shape", t.shape()}, {"values", t.to_vector()}}; };
  nlohmann::json request = nlohmann::json::array();
  std::vector<Tensor> outputs;
  std::vector<std::vector<Tensor>> leaves;
  for (const TorchBf16Case& c : cases) {
    std::vector<Tensor> xs;
    nlohmann::json inputs = nlohmann::json::array();
    for (const Tensor& t : c.inputs) {
      xs.push_back(t.detach().clone());
      xs.back().set_requires_grad(true);
      inputs.push_back(to_json(t));
    }
    const Tensor y = c.f(xs);
    const Tensor g = uniform_values(y.shape(), grad_seed + outputs.size(), DType::Float32, -1, 1, 0.125)
                         .to(DType::BFloat16);
    y.backward(g);
    request.push_back({{"op", c.name}, {"args", c.args}, {"inputs", inputs}, {"grad", to_json(g)}});
    outputs.push_back(y);
    leaves.push_back(xs);
  }
  const TempDir dir("bf16-torch");
  write_text(dir / "cases.json", request.dump());
  std::string text;
  const std::string command = "/usr/bin/python3 " PNEUMA_SOURCE_DIR "/tests/ops/" + script + " " + (dir / "cases.json");
  REQUIRE_MESSAGE(run_command(command, &text) == 0, command, " failed: ", text);
  const nlohmann::json torch = nlohmann::json::parse(text);
  REQUIRE(torch.size() == cases.size());
  const auto theirs = [](const nlohmann::json& values, const Tensor& like) {
    return Tensor::from_vector(values.get<std::vector<double>>(), like.shape(), DType::Float32);
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    CAPTURE(k);
    CAPTURE(cases[k].name);
    require_bf16_close(theirs(torch[k].at("output"), outputs[k]), outputs[k], cases[k].output_atol, "output");
    for (size_t i = 0; i < leaves[k].size(); ++i) {
      const Tensor grad = leaves[k][i].grad();
      require_bf16_close(theirs(torch[k].at("grads").at(i), grad), grad, cases[k].grad_atol,
                         "gradient " + std::to_string(i));
    }
  }
}

}  // namespace pneuma::testing
