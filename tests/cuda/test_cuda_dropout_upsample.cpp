// dropout and upsampling on CUDA tensors against the CPU. Skipped without a GPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda dropout: the CPU's mask for a seed") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    check_cuda_parity([](const auto& t) { return dropout(t[0], 0.3, true, 42); }, {parity_input({4, 33, 7}, 1, dtype)});
  }
}

TEST_CASE("parity cuda upsample_nearest2d and upsample_bilinear2d") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({2, 3, 5, 4}, 2, dtype);
    check_cuda_parity([](const auto& t) { return upsample_nearest2d(t[0], {10, 8}); }, {x});
    check_cuda_parity([](const auto& t) { return upsample_nearest2d(t[0], {7, 9}); }, {x});
    check_cuda_parity([](const auto& t) { return upsample_bilinear2d(t[0], {11, 9}, false); }, {x});
    check_cuda_parity([](const auto& t) { return upsample_bilinear2d(t[0], {11, 9}, true); }, {x});
  }
}

}  // TEST_SUITE

TEST_SUITE("cuda") {

TEST_CASE("parity cuda normalize") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = parity_input({4, 3, 5}, 3, dtype);
    check_cuda_parity([](const auto& t) { return normalize(t[0], 2.0, 1); }, {x});
    check_cuda_parity([](const auto& t) { return normalize(t[0], 1.0, -1); }, {x});
    check_cuda_parity([](const auto& t) { return normalize(t[0], 3.0, 0); }, {x});
  }
}

}  // TEST_SUITE
