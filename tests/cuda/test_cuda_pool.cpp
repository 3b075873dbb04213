// Pooling on CUDA tensors against the CPU, forward and backward. Skipped without a GPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda max_pool2d") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({2, 3, 11, 10}, 1, dtype);
    check_cuda_parity([](const auto& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x});
    check_cuda_parity([](const auto& t) { return max_pool2d(t[0], {2, 3}, {1, 2}, {1, 1}, {2, 1}, true); }, {x});
    check_cuda_parity([](const auto& t) { return max_pool2d_with_indices(t[0], {2, 2}).second.to(DType::Float64); },
                      {x});
  }
}

TEST_CASE("parity cuda avg_pool2d and adaptive_avg_pool2d") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({2, 3, 11, 10}, 2, dtype);
    check_cuda_parity([](const auto& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x});
    check_cuda_parity([](const auto& t) { return avg_pool2d(t[0], {3, 2}, {2, 2}, {1, 1}, true, false); }, {x});
    check_cuda_parity([](const auto& t) { return adaptive_avg_pool2d(t[0], {1, 1}); }, {x});
    check_cuda_parity([](const auto& t) { return adaptive_avg_pool2d(t[0], {4, 3}); }, {x});
  }
}

}  // TEST_SUITE
