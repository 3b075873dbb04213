// Elementwise, copy, where/masked_fill/cat and sum/mean on CUDA tensors against the CPU.
// Skipped without a GPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"
#include "tests/support/unary_ops.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda unary elementwise ops") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const testing::UnaryFunction& u : testing::kUnaryOps) {
      CAPTURE(u.name);
      CAPTURE(dtype_name(dtype));
      check_cuda_parity([&](const auto& x) { return u.f(x[0]); }, {parity_input({3, 67}, 1, dtype, u.lo, u.hi)});
      // A transposed (non-contiguous) input.
      check_cuda_parity([&](const auto& x) { return u.f(x[0].transpose(0, 1)); },
                        {parity_input({67, 3}, 2, dtype, u.lo, u.hi)});
    }
  }
}

TEST_CASE("parity cuda binary elementwise ops with broadcasting") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor a = parity_input({2, 1, 5}, 3, dtype, 0.5, 2), b = parity_input({4, 1}, 4, dtype, 0.5, 2);
    check_cuda_parity([](const auto& x) { return add(x[0], x[1]); }, {a, b});
    check_cuda_parity([](const auto& x) { return sub(x[0], x[1]); }, {a, b});
    check_cuda_parity([](const auto& x) { return mul(x[0], x[1]); }, {a, b});
    check_cuda_parity([](const auto& x) { return div(x[0], x[1]); }, {a, b});
    check_cuda_parity([](const auto& x) { return pow(x[0], x[1]); }, {a, b});
    check_cuda_parity([](const auto& x) { return pow(x[0], x[1]); },
                      {Tensor::from_vector({0, 1, 2, 0}, {4}, dtype), Tensor::from_vector({0, 2, 0, 3}, {4}, dtype)});
  }
}

TEST_CASE("parity cuda comparisons") {
  PNEUMA_REQUIRE_GPU();
  const Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}), b = Tensor::from_vector({2, 2, 1}, {3});
  check_cuda_parity([](const auto& x) { return gt(x[0], x[1]); }, {a, b});
  check_cuda_parity([](const auto& x) { return lt(x[0], x[1]); }, {a, b});
  check_cuda_parity([](const auto& x) { return ge(x[0], x[1]); }, {a, b});
  check_cuda_parity([](const auto& x) { return le(x[0], x[1]); }, {a, b});
  check_cuda_parity([](const auto& x) { return eq(x[0], x[1]); }, {a, b});
  check_cuda_parity([](const auto& x) { return gt(x[0], 2.5); }, {a});
}

TEST_CASE("parity cuda sum and mean") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({4, 3, 700}, 5, dtype);
    check_cuda_parity([](const auto& t) { return sum(t[0]); }, {x});
    check_cuda_parity([](const auto& t) { return sum(t[0], {0, 2}, true); }, {x});
    check_cuda_parity([](const auto& t) { return mean(t[0], {1}); }, {x});
    check_cuda_parity([](const auto& t) { return mean(t[0].transpose(0, 2), {0}); }, {x});
    check_cuda_parity([](const auto& t) { return sum(t[0], {1}); }, {parity_input({3, 100000}, 6, dtype)});
  }
}

TEST_CASE("parity cuda copies: clone - contiguous - to(dtype) - slice backward") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = parity_input({5, 6}, 7, DType::Float32);
  check_cuda_parity([](const auto& t) { return t[0].transpose(0, 1).contiguous(); }, {x});
  check_cuda_parity([](const auto& t) { return t[0].slice(1, 1, 5, 2).clone(); }, {x});
  check_cuda_parity([](const auto& t) { return t[0].to(DType::Float64); }, {x});
  check_cuda_parity([](const auto& t) { return t[0].select(0, 2); }, {x});
  const Tensor on_gpu = x.to(Device::cuda());
  CHECK(on_gpu.to(DType::Int64).to(Device::cpu()).to_vector() == x.to(DType::Int64).to_vector());
  CHECK(gt(on_gpu, 0.0).to(DType::Float32).to(Device::cpu()).to_vector() == gt(x, 0.0).to(DType::Float32).to_vector());
}

TEST_CASE("parity cuda where - masked_fill and cat") {
  PNEUMA_REQUIRE_GPU();
  const Tensor condition = gt(parity_input({3, 1, 4}, 8, DType::Float32), 0.0);
  const Tensor a = parity_input({5, 4}, 9, DType::Float32), b = parity_input({4}, 10, DType::Float32);
  check_cuda_parity([](const auto& t) { return where(t[0], t[1], t[2]); }, {condition, a, b});
  check_cuda_parity([](const auto& t) { return masked_fill(t[0], t[1], -2.0); }, {a, lt(b, 0.0)});
  check_cuda_parity([](const auto& t) { return cat({t[0], t[1].transpose(0, 1)}, 0); },
                    {a, parity_input({4, 2}, 11, DType::Float32)});
  check_cuda_parity([](const auto& t) { return stack({t[0], t[1]}, 1); }, {a, neg(a)});
}

}  // TEST_SUITE

TEST_SUITE("cuda") {

TEST_CASE("parity cuda softmax and log_softmax") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({4, 3, 5, 6}, 12, dtype, -8, 8);
    for (const int64_t dim : {-1, 1, 0}) {
      CAPTURE(dim);
      check_cuda_parity([dim](const auto& t) { return softmax(t[0], dim); }, {x});
      check_cuda_parity([dim](const auto& t) { return log_softmax(t[0], dim); }, {x});
    }
    check_cuda_parity([](const auto& t) { return log_softmax(t[0], 1); }, {parity_input({3, 5000}, 13, dtype, -8, 8)});
  }
}

}  // TEST_SUITE

TEST_SUITE("cuda") {

TEST_CASE("parity cuda max - min - amax and amin") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = Tensor::from_vector({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}, {3, 4});
  check_cuda_parity([](const auto& t) { return max(t[0]); }, {x});
  check_cuda_parity([](const auto& t) { return min(t[0]); }, {x});
  check_cuda_parity([](const auto& t) { return amax(t[0], {1}); }, {x});
  check_cuda_parity([](const auto& t) { return amin(t[0], {0}, true); }, {x});
  // The dim forms' values and indices (their backward: "parity cuda max and min along a dim").
  const auto [values, indices] = max(x.to(Device::cuda()), 1);
  const auto [cpu_values, cpu_indices] = max(x, 1);
  CHECK(values.to_vector() == cpu_values.to_vector());
  CHECK(indices.to_indices() == cpu_indices.to_indices());
}

}  // TEST_SUITE
