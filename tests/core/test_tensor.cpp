#include <doctest/doctest.h>

#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

TEST_CASE("views share storage and follow PyTorch geometry") {
  Tensor x = Tensor::arange(24).reshape({2, 3, 4});
  CHECK(x.is_contiguous());
  Tensor t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(!t.is_contiguous());
  CHECK(t.storage() == x.storage());
  CHECK(t.contiguous().to_vector()[1] == 12);
  Tensor s = x.slice(2, 1, 4, 2);  // x[:, :, 1:4:2]
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.to_vector() == std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  CHECK(x.select(1, -1).to_vector() == std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23});
  CHECK(x.slice(0, -1, 100).shape() == Shape{1, 3, 4});
  Tensor e = Tensor::from_vector({1, 2, 3}, {3, 1}).expand({3, 4});
  CHECK(e.strides() == Strides{1, 0});
  CHECK(e.to_vector() == std::vector<double>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  CHECK(x.flatten(1).shape() == Shape{2, 12});
  CHECK(x.reshape({-1, 4}).shape() == Shape{6, 4});
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(x.unsqueeze(0).squeeze(0).shape() == Shape{2, 3, 4});
  // view of a transposed tensor is refused, reshape copies
  CHECK_THROWS_AS(t.view({24}), Error);
  CHECK(t.reshape({24}).to_vector()[1] == 12);
  CHECK(x.permute({2, 0, 1}).shape() == Shape{4, 2, 3});
  CHECK_THROWS_WITH_AS(x.reshape({5, 5}), "reshape: shape [5, 5] is invalid for input of size 24", Error);
}

TEST_CASE("dtype conversion and storage types round-trip") {
  Tensor x = Tensor::from_vector({1.5, -2.25, 3.0, 65504.0}, {4});
  CHECK(x.to(DType::Float16).to(DType::Float32).to_vector() == x.to_vector());
  CHECK(x.to(DType::BFloat16).to(DType::Float64).to_vector() == std::vector<double>{1.5, -2.25, 3.0, 65536.0});
  CHECK(x.to(DType::Int64).to_indices() == std::vector<int64_t>{1, -2, 3, 65504});
  CHECK(Tensor::from_vector({0.1}, {1}).to(DType::Float16).to(DType::Float64).item() == doctest::Approx(0.0999755859375));
}

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck reshape") {
    gradcheck([](const auto& x) { return x[0].reshape({3, 2, 2}); }, {random_input({2, 6}, 1)});
    gradcheck([](const auto& x) { return x[0].transpose(0, 1).reshape({12}); }, {random_input({2, 6}, 2)});
  }
  TEST_CASE("gradcheck permute") {
    gradcheck([](const auto& x) { return x[0].permute({2, 0, 1}); }, {random_input({2, 3, 4}, 1)});
  }
  TEST_CASE("gradcheck transpose") {
    gradcheck([](const auto& x) { return x[0].transpose(-1, 0); }, {random_input({2, 3, 4}, 1)});
  }
  TEST_CASE("gradcheck slice") {
    gradcheck([](const auto& x) { return x[0].slice(1, 1, 5, 2); }, {random_input({3, 6}, 1)});
    gradcheck([](const auto& x) { return x[0].select(0, 1); }, {random_input({3, 6}, 2)});
  }
  TEST_CASE("gradcheck expand") {
    gradcheck([](const auto& x) { return x[0].expand({2, 3, 4}); }, {random_input({3, 1}, 1)});
  }
  TEST_CASE("gradcheck flatten") {
    gradcheck([](const auto& x) { return x[0].flatten(1); }, {random_input({2, 3, 4}, 1)});
  }
  TEST_CASE("gradcheck sum") {
    gradcheck([](const auto& x) { return sum(x[0]); }, {random_input({3, 4}, 1)});
    gradcheck([](const auto& x) { return sum(x[0], {0, 2}, true); }, {random_input({3, 4, 2}, 2)});
    gradcheck([](const auto& x) { return sum(x[0], {-1}); }, {random_input({3, 4}, 3)});
  }
  TEST_CASE("gradcheck mean") {
    gradcheck([](const auto& x) { return mean(x[0]); }, {random_input({3, 4}, 1)});
    gradcheck([](const auto& x) { return mean(x[0], {1}, true); }, {random_input({3, 4, 2}, 2)});
  }
}

TEST_CASE("autograd accumulates - frees saved tensors - and refuses a second backward") {
  Tensor x = random_input({3}, 7);
  Tensor y = sum(mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  const std::vector<double> once = x.grad().to_vector();
  y.backward();  // retained: runs again and accumulates
  const std::vector<double> twice = x.grad().to_vector();
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("a second time"), Error);

  // a diamond: x feeds two paths that meet again
  Tensor a = random_input({4}, 8);
  Tensor z = sum(add(exp(a), mul(a, 3.0)));
  z.backward();
  const std::vector<double> av = a.detach().to_vector(), ag = a.grad().to_vector();
  for (size_t i = 0; i < av.size(); ++i) CHECK(ag[i] == doctest::Approx(std::exp(av[i]) + 3.0));

  // no graph under NoGradGuard, and backward of a non-scalar needs grad_output
  {
    NoGradGuard guard;
    CHECK(!mul(a, 2.0).requires_grad());
  }
  CHECK_THROWS_WITH_AS(mul(a, 2.0).backward(), doctest::Contains("only for a tensor with one element"), Error);
  CHECK_THROWS_AS(sum(Tensor::ones({2})).backward(), Error);
}

TEST_CASE("CUDA tensors without a CUDA build or device are an error - not a fallback") {
  // Only the allocation path is checked here; CUDA ops are tested under the cuda label.
  if (Device::parse("cuda:0").is_cuda()) {
#ifndef PNEUMA_WITH_CUDA
    CHECK_THROWS_AS(Tensor::zeros({2}, DType::Float32, Device::cuda()), Error);
#endif
  }
  CHECK_THROWS_WITH_AS(Device::parse("gpu"), "device: expected cpu, cuda or cuda:N, got 'gpu'", Error);
}
