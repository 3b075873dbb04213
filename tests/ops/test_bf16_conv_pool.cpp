// bfloat16 convolutions and pooling on the CPU, forward and backward, on both paths (oneDNN's bf16
// kernels and the reference loops), against the float32 oracle: the same op in float32 on the
// bf16-rounded inputs and output gradient.
//
// Tolerance. A bf16 op computes in float and rounds once, so it differs from the float32 oracle by
// at most half a bf16 ulp of the value (2^-9 relative) plus the float32 rounding differences of
// two summation orders. The check allows one bf16 ulp of the value (2^-8 relative, twice the
// rounding bound) plus an absolute term of 1e-3 of the tensor's largest magnitude for the float32
// sums: a conv weight gradient sums N*OH*OW products (up to 512 here), whose float32 error relative
// to the sum of |terms| is ~1e-6, and that sum is at most ~sqrt(512) times the largest gradient;
// the same term covers values that cancel to near zero. Max pooling forward is exact (it picks a
// bf16 value), so its outputs and indices must be equal. conv_transpose2d adds its bias to the
// rounded bf16 product (oneDNN's backward-data primitive has no bias; PyTorch's CUDA path adds the
// bias after cuDNN the same way), two roundings, so its output is allowed two ulps.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/cpu/onednn_context.h"
#include "tests/support/cuda.h"
#include "engine/cpu/fast_path.h"
#include "engine/ops/conv/conv_cpu.h"
#include "engine/pneuma.h"
#include "tests/data/data_util.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;

namespace {

constexpr double kRelative = 1.0 / 256;     // one bf16 ulp relative to the value (2^-8)
constexpr double kAbsoluteFraction = 1e-3;  // of the largest |expected| in the tensor

// Uniform values in [-1, 1) rounded to bfloat16, held in float32: the oracle's inputs, which the
// bf16 op receives exactly.
Tensor rounded_input(const Shape& shape, uint64_t seed) {
  std::vector<double> v = Tensor::rand(shape, seed, DType::Float64).to_vector();
  for (double& x : v) x = 2 * x - 1;
  return Tensor::from_vector(v, shape, DType::Float32).to(DType::BFloat16).to(DType::Float32);
}

// actual (bfloat16) against expected (float32): shapes equal and every element within
// kRelative * |expected| + kAbsoluteFraction * max|expected|; reports the first element outside.
void require_bf16_close(const Tensor& expected, const Tensor& actual, const std::string& what, double ulps = 1) {
  REQUIRE(actual.defined());
  REQUIRE(actual.dtype() == DType::BFloat16);
  REQUIRE(expected.dtype() == DType::Float32);
  pneuma::testing::require_near_scaled(expected, actual, ulps * kRelative, kAbsoluteFraction, what);
}

// An op's output and the gradients of its float inputs, given the output gradient.
struct Run {
  Tensor y;
  std::vector<Tensor> grads;
};

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs op on the inputs converted to dtype (undefined inputs stay undefined), then backward with
// the output gradient `gy` (float32, bf16-rounded) converted to dtype.
Run run_in(DType dtype, const Op& op, const std::vector<Tensor>& inputs, const Tensor& gy) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.push_back(t);
      continue;
    }
    Tensor leaf = t.to(dtype).detach();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Run run;
  const Tensor y = op(leaves);
  REQUIRE(y.dtype() == dtype);
  y.backward(gy.to(dtype));
  run.y = y.detach();
  for (const Tensor& leaf : leaves) run.grads.push_back(leaf.defined() ? leaf.grad() : Tensor());
  return run;
}

// The bf16 op against the float32 oracle, forward and every input gradient.
void check_against_oracle(const Op& op, const std::vector<Tensor>& inputs, uint64_t gradient_seed,
                          double output_ulps = 1) {
  const Shape out_shape = op(inputs).shape();
  const Tensor gy = rounded_input(out_shape, gradient_seed);
  const Run oracle = run_in(DType::Float32, op, inputs, gy);
  const Run bf16 = run_in(DType::BFloat16, op, inputs, gy);
  require_bf16_close(oracle.y, bf16.y, "output", output_ulps);
  const char* names[] = {"input gradient", "weight gradient", "bias gradient"};
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    CAPTURE(i);
    REQUIRE(bf16.grads[i].defined());
    require_bf16_close(oracle.grads[i], bf16.grads[i], names[i < 3 ? i : 0]);
  }
}

struct ConvCase {
  const char* name;
  Shape x, w;
  std::array<int64_t, 2> stride, padding;
  int64_t groups;
  bool bias;
};

// The convolutions of ResNet-18/50 (stem, 3x3 s1 and s2, 1x1 s2 downsample) plus a grouped one.
const ConvCase kConvCases[] = {
    {"7x7 s2 p3 stem", {2, 3, 32, 32}, {8, 3, 7, 7}, {2, 2}, {3, 3}, 1, false},
    {"3x3 s1 p1", {2, 16, 14, 14}, {16, 16, 3, 3}, {1, 1}, {1, 1}, 1, false},
    {"3x3 s2 p1", {2, 16, 14, 14}, {32, 16, 3, 3}, {2, 2}, {1, 1}, 1, false},
    {"1x1 s2 downsample", {2, 16, 14, 14}, {32, 16, 1, 1}, {2, 2}, {0, 0}, 1, false},
    {"3x3 groups 2 with bias", {2, 8, 9, 9}, {8, 4, 3, 3}, {1, 1}, {1, 1}, 2, true},
};

void check_conv_cases() {
  uint64_t seed = 10;
  for (const ConvCase& c : kConvCases) {
    const std::string name = c.name;
    CAPTURE(name);
    const Tensor x = rounded_input(c.x, ++seed), w = rounded_input(c.w, ++seed);
    const Tensor b = c.bias ? rounded_input({c.w[0]}, ++seed) : Tensor();
    check_against_oracle(
        [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], c.stride, c.padding, {1, 1}, c.groups); },
        {x, w, b}, ++seed);
  }
}

void check_conv_transpose() {
  const Tensor x = rounded_input({2, 8, 7, 7}, 31), w = rounded_input({8, 4, 3, 3}, 32), b = rounded_input({8}, 33);
  check_against_oracle(
      [](const std::vector<Tensor>& t) { return conv_transpose2d(t[0], t[1], t[2], {2, 2}, {1, 1}, {1, 1}, 2); },
      {x, w, b}, 34, /*output_ulps=*/2);
}

void check_pool_cases() {
  const Tensor x = rounded_input({2, 8, 16, 16}, 41);
  {
    INFO("max_pool2d 3x3 s2 p1");
    const Op op = [](const std::vector<Tensor>& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); };
    check_against_oracle(op, {x}, 42);
    // The maximum is one of the bf16 inputs: exact.
    CHECK(op({x.to(DType::BFloat16)}).to(DType::Float32).to_vector() == op({x}).to_vector());
  }
  {
    INFO("max_pool2d_with_indices picks the float32 oracle's elements");
    const auto [y, indices] = max_pool2d_with_indices(x.to(DType::BFloat16), {3, 3}, {2, 2}, {1, 1});
    const auto [y_oracle, indices_oracle] = max_pool2d_with_indices(x, {3, 3}, {2, 2}, {1, 1});
    CHECK(y.dtype() == DType::BFloat16);
    CHECK(y.to(DType::Float32).to_vector() == y_oracle.to_vector());
    CHECK(indices.to_indices() == indices_oracle.to_indices());
  }
  {
    INFO("avg_pool2d 3x3 s2 p1");
    check_against_oracle([](const std::vector<Tensor>& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x},
                         43);
  }
  {
    INFO("avg_pool2d 3x3 s2 p1 without the padding in the divisor, ceil mode");
    check_against_oracle(
        [](const std::vector<Tensor>& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, true, false); }, {x}, 44);
  }
  {
    INFO("adaptive_avg_pool2d to 1x1 (ResNet's head)");
    const Tensor head = rounded_input({2, 16, 7, 7}, 45);
    check_against_oracle([](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], {1, 1}); }, {head}, 46);
  }
  {
    INFO("adaptive_avg_pool2d to uneven bins");
    check_against_oracle([](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], {3, 5}); }, {x}, 47);
  }
}

// PyTorch on bfloat16 tensors: reads the inputs and output gradients of each case from argv[1],
// writes each case's output and input gradients (as float lists) to argv[2].
constexpr const char* kTorchScript = R"(
import json, sys
import torch
import torch.nn.functional as F

data = json.load(open(sys.argv[1]))
def tensor(name):
    return torch.tensor(data[name]["values"], dtype=torch.float32).reshape(data[name]["shape"]).bfloat16()
x, w, b, head = tensor("x"), tensor("w"), tensor("b"), tensor("head")
cases = {
    "conv2d": (lambda t: F.conv2d(t[0], t[1], t[2], stride=2, padding=1), [x, w, b]),
    "max_pool2d": (lambda t: F.max_pool2d(t[0], 3, 2, 1), [x]),
    "avg_pool2d": (lambda t: F.avg_pool2d(t[0], 3, 2, 1), [x]),
    "adaptive_avg_pool2d": (lambda t: F.adaptive_avg_pool2d(t[0], 1), [head]),
}
out = {}
for name, (f, inputs) in cases.items():
    leaves = [t.clone().requires_grad_() for t in inputs]
    y = f(leaves)
    assert y.dtype == torch.bfloat16
    y.backward(tensor("gy_" + name))
    out[name] = [y.float().flatten().tolist()] + [leaf.grad.float().flatten().tolist() for leaf in leaves]
json.dump(out, open(sys.argv[2], "w"))
)";

nlohmann::json values_json(const Tensor& t) { return {{"shape", t.shape()}, {"values", t.to_vector()}}; }

}  // namespace

TEST_SUITE("parity") {

// Against PyTorch 1.13 on bfloat16 tensors (its oneDNN kernels on this CPU): both sides compute in
// float and round once, in different orders, so two ulps. Not avg_pool2d's input gradient: torch
// 1.13 scatters it into the bfloat16 gradient, rounding at every add (on these shapes a quarter of
// its elements differ from the correctly rounded float32 oracle, some by several ulps), where ours
// sums in float and rounds once; the float32 oracle tests above check ours.
TEST_CASE("parity bfloat16 conv2d and pooling against torch") {
  const Tensor x = rounded_input({2, 16, 14, 14}, 71), w = rounded_input({32, 16, 3, 3}, 72);
  const Tensor b = rounded_input({32}, 73), head = rounded_input({2, 16, 7, 7}, 74);
  struct Case {
    std::string name;
    Op op;
    std::vector<Tensor> inputs;
    bool compare_gradients = true;
  };
  const std::vector<Case> cases = {
      {"conv2d", [](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], {2, 2}, {1, 1}); }, {x, w, b}},
      {"max_pool2d", [](const std::vector<Tensor>& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x}},
      {"avg_pool2d", [](const std::vector<Tensor>& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x}, false},
      {"adaptive_avg_pool2d", [](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], {1, 1}); }, {head}},
  };
  nlohmann::json in = {
      {"x", values_json(x)}, {"w", values_json(w)}, {"b", values_json(b)}, {"head", values_json(head)}};
  std::vector<Tensor> output_gradients;
  uint64_t seed = 80;
  for (const Case& c : cases) {
    output_gradients.push_back(rounded_input(c.op(c.inputs).shape(), ++seed));
    in["gy_" + c.name] = values_json(output_gradients.back());
  }
  const testing::TempDir dir("bf16-torch");
  testing::write_text(dir / "in.json", in.dump());
  testing::write_text(dir / "torch_bf16.py", kTorchScript);
  const std::string command = "/usr/bin/python3 " + (dir / "torch_bf16.py") + " " + (dir / "in.json") + " " +
                              (dir / "out.json") + " 2>&1";
  std::string log;
  REQUIRE_MESSAGE(testing::run_command(command, &log) == 0, command, ": ", log);
  const nlohmann::json torch_results = nlohmann::json::parse(std::ifstream(dir / "out.json"));
  for (size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    CAPTURE(c.name);
    const Run ours = run_in(DType::BFloat16, c.op, c.inputs, output_gradients[k]);
    const auto& expected = torch_results.at(c.name);
    const auto as_tensor = [&](size_t i, const Shape& shape) {
      return Tensor::from_vector(expected.at(i).get<std::vector<double>>(), shape, DType::Float32);
    };
    require_bf16_close(as_tensor(0, ours.y.shape()), ours.y, "output", 2);
    for (size_t i = 0; c.compare_gradients && i < c.inputs.size(); ++i)
      require_bf16_close(as_tensor(i + 1, c.inputs[i].shape()), ours.grads[i], "gradient " + std::to_string(i), 2);
  }
}

}  // TEST_SUITE

TEST_SUITE("bfloat16") {

TEST_CASE("bfloat16 conv2d forward and backward") {
  SUBCASE("oneDNN bf16 kernels") { check_conv_cases(); }
  SUBCASE("reference loops") {
    cpu::FastPathGuard reference;
    const int64_t calls = cpu::onednn_conv_calls();
    check_conv_cases();
    CHECK(cpu::onednn_conv_calls() == calls);
  }
}

TEST_CASE("bfloat16 conv_transpose2d forward and backward") {
  SUBCASE("oneDNN bf16 kernels") { check_conv_transpose(); }
  SUBCASE("reference loops") {
    cpu::FastPathGuard reference;
    check_conv_transpose();
  }
}

TEST_CASE("bfloat16 conv2d runs in oneDNN on the fast path") {
  if (!cpu::onednn_supports_bfloat16()) return testing::skip_test("oneDNN has no bfloat16 kernels on this CPU");
  Tensor x = rounded_input({2, 16, 14, 14}, 61).to(DType::BFloat16).detach();
  x.set_requires_grad(true);
  const Tensor w = rounded_input({32, 16, 3, 3}, 62).to(DType::BFloat16);
  const int64_t before = cpu::onednn_conv_calls();
  const Tensor y = conv2d(x, w, Tensor(), {2, 2}, {1, 1});
  CHECK(cpu::onednn_conv_calls() == before + 1);
  y.backward(rounded_input(y.shape(), 63).to(DType::BFloat16));
  CHECK(cpu::onednn_conv_calls() == before + 2);
}

TEST_CASE("bfloat16 conv2d under autocast: float32 master weights get float32 gradients") {
  const Tensor x = rounded_input({2, 16, 14, 14}, 91), w = rounded_input({32, 16, 3, 3}, 92);
  const Tensor b = rounded_input({32}, 93);
  const Op op = [](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], {2, 2}, {1, 1}); };
  const Tensor gy = rounded_input(op({x, w, b}).shape(), 94);
  const Run oracle = run_in(DType::Float32, op, {x, w, b}, gy);
  std::vector<Tensor> leaves = {x.detach(), w.detach(), b.detach()};
  for (Tensor& leaf : leaves) leaf.set_requires_grad(true);
  Tensor y;
  {
    autocast::Guard guard(DType::BFloat16);
    y = op(leaves);
  }
  REQUIRE(y.dtype() == DType::BFloat16);
  y.backward(gy.to(DType::BFloat16));
  require_bf16_close(oracle.y, y, "output");
  const char* names[] = {"input gradient", "weight gradient", "bias gradient"};
  for (size_t i = 0; i < leaves.size(); ++i) {
    REQUIRE(leaves[i].grad().dtype() == DType::Float32);
    // The gradient arrives through the cast: a bf16 value widened exactly.
    require_bf16_close(oracle.grads[i], leaves[i].grad().to(DType::BFloat16), names[i]);
  }
}

TEST_CASE("bfloat16 conv2d keeps bias and gradients in bfloat16") {
  const Tensor x = rounded_input({1, 4, 6, 6}, 51).to(DType::BFloat16);
  const Tensor w = rounded_input({6, 4, 3, 3}, 52).to(DType::BFloat16);
  Tensor b = rounded_input({6}, 53).to(DType::BFloat16).detach();
  b.set_requires_grad(true);
  const Tensor y = conv2d(x, w, b, {1, 1}, {1, 1});
  CHECK(y.dtype() == DType::BFloat16);
  y.backward(rounded_input(y.shape(), 54).to(DType::BFloat16));
  CHECK(b.grad().dtype() == DType::BFloat16);
  // A float32 bias on bfloat16 data is refused, naming the op (autocast casts the bias too).
  CHECK_THROWS_WITH_AS(conv2d(x, w, rounded_input({6}, 55)), doctest::Contains("conv2d"), Error);
}

TEST_CASE("bfloat16 pooling forward and backward") {
  SUBCASE("oneDNN") { check_pool_cases(); }
  SUBCASE("reference loops") {
    cpu::FastPathGuard reference;
    check_pool_cases();
  }
}

}  // TEST_SUITE
