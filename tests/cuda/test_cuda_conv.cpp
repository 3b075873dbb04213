// conv2d / conv_transpose2d through cuDNN against the CPU, forward and backward. Skipped without a GPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_parity.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/context.h"
#endif

using namespace pneuma;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::parity_input;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda conv2d") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const double tol = dtype == DType::Float32 ? 1e-4 : 1e-10;
    check_cuda_parity([](const auto& t) { return conv2d(t[0], t[1], t[2], {1, 1}, {1, 1}); },
                      {parity_input({2, 3, 9, 9}, 1, dtype), parity_input({4, 3, 3, 3}, 2, dtype),
                       parity_input({4}, 3, dtype)},
                      tol);
    // Stride, dilation, groups, no bias, odd sizes.
    check_cuda_parity([](const auto& t) { return conv2d(t[0], t[1], Tensor(), {2, 1}, {2, 1}, {2, 1}, 2); },
                      {parity_input({3, 4, 11, 8}, 4, dtype), parity_input({6, 2, 3, 2}, 5, dtype)}, tol);
    // Unbatched CHW input.
    check_cuda_parity([](const auto& t) { return conv2d(t[0], t[1]); },
                      {parity_input({3, 6, 6}, 6, dtype), parity_input({2, 3, 1, 1}, 7, dtype)}, tol);
  }
}

TEST_CASE("parity cuda conv_transpose2d") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    CAPTURE(dtype_name(dtype));
    const double tol = dtype == DType::Float32 ? 1e-4 : 1e-10;
    check_cuda_parity(
        [](const auto& t) { return conv_transpose2d(t[0], t[1], t[2], {2, 2}, {1, 1}, {1, 1}); },
        {parity_input({2, 4, 5, 5}, 1, dtype), parity_input({4, 3, 3, 3}, 2, dtype), parity_input({3}, 3, dtype)}, tol);
  }
}

TEST_CASE("parity cuda conv2d: one algorithm search per problem") {
  PNEUMA_REQUIRE_GPU();
#ifdef PNEUMA_WITH_CUDA  // the device context exists only there
  cuda::ConvAlgorithmCache& cache = cuda::DeviceContext::get(0).conv_algorithms();
  cache.clear();
  const Tensor x = parity_input({2, 3, 8, 8}, 1, DType::Float32).to(Device::cuda());
  const Tensor w = parity_input({4, 3, 3, 3}, 2, DType::Float32).to(Device::cuda());
  conv2d(x, w);
  CHECK(cache.size() == 1);
  conv2d(x, w);
  CHECK(cache.size() == 1);
  conv2d(x, w, Tensor(), {2, 2});
  CHECK(cache.size() == 2);
#endif
}

}  // TEST_SUITE
