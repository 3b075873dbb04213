// Pooling on channels-last CUDA tensors (our NHWC kernels) against the CPU, forward and backward,
// float32, float64 and bfloat16, with the layouts of the output and of the op's own input gradient
// asserted on both devices. Skipped without a GPU.
#include <doctest/doctest.h>

#include <array>
#include <string>

#include "tests/cuda/cuda_parity.h"
#include "tests/ops/channels_last_check.h"

using namespace pneuma;
using pneuma::testing::bf16_exact_input;
using pneuma::testing::channels_last;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::checked_channels_last;
using pneuma::testing::kBf16ParityTolerance;
using pneuma::testing::parity_input;
using pneuma::testing::strides_are_channels_last;
using pneuma::testing::to_bf16;
using pneuma::testing::to_f32;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda max_pool2d channels last") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor x = parity_input({2, 5, 11, 10}, 1, dtype);
    check_cuda_parity(
        [](const auto& t) { return checked_channels_last(max_pool2d(channels_last(t[0]), {3, 3}, {2, 2}, {1, 1})); },
        {x});
    check_cuda_parity([](const auto& t) {
      return checked_channels_last(max_pool2d(channels_last(t[0]), {2, 3}, {1, 2}, {1, 1}, {2, 1}, true));
    }, {x});
    check_cuda_parity([](const auto& t) {
      const Tensor indices = max_pool2d_with_indices(channels_last(t[0]), {3, 3}, {2, 2}, {1, 1}).second;
      CHECK(strides_are_channels_last(indices));
      return indices.to(DType::Float64);
    }, {x});
  }
}

TEST_CASE("parity cuda avg_pool2d channels last") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor x = parity_input({2, 6, 11, 10}, 2, dtype);
    check_cuda_parity(
        [](const auto& t) { return checked_channels_last(avg_pool2d(channels_last(t[0]), {3, 3}, {2, 2}, {1, 1})); },
        {x});
    check_cuda_parity([](const auto& t) {
      return checked_channels_last(avg_pool2d(channels_last(t[0]), {3, 2}, {2, 2}, {1, 1}, true, false));
    }, {x});
  }
}

TEST_CASE("parity cuda adaptive_avg_pool2d channels last") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor x = parity_input({2, 7, 9, 10}, 3, dtype);
    for (const std::array<int64_t, 2> size : {std::array<int64_t, 2>{1, 1}, std::array<int64_t, 2>{4, 3}}) {
      check_cuda_parity(
          [=](const auto& t) { return checked_channels_last(adaptive_avg_pool2d(channels_last(t[0]), size)); }, {x});
    }
  }
}

TEST_CASE("parity cuda pooling bfloat16 channels last") {
  PNEUMA_REQUIRE_GPU();
  // ResNet's shapes in small: the stem's max pool over 64 channels and the global average pool.
  const Tensor x = bf16_exact_input({2, 64, 12, 12}, 4);
  check_cuda_parity([](const auto& t) {
    return to_f32(checked_channels_last(max_pool2d(channels_last(to_bf16(t[0])), {3, 3}, {2, 2}, {1, 1})));
  }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) {
    return to_f32(checked_channels_last(avg_pool2d(channels_last(to_bf16(t[0])), {2, 2})));
  }, {x}, kBf16ParityTolerance);
  check_cuda_parity([](const auto& t) {
    return to_f32(checked_channels_last(adaptive_avg_pool2d(channels_last(to_bf16(t[0])), {1, 1})));
  }, {x}, kBf16ParityTolerance);
}

}  // TEST_SUITE
