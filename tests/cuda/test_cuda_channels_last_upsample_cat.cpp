// upsample (our NHWC kernels) and cat on channels-last CUDA tensors against the CPU, forward and
// backward, with the layouts asserted on both devices. Skipped without a GPU.
#include <doctest/doctest.h>

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
using pneuma::testing::to_bf16;
using pneuma::testing::to_f32;

TEST_SUITE("cuda") {

TEST_CASE("parity cuda upsample channels last") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor x = parity_input({2, 5, 6, 7}, 31, dtype);
    check_cuda_parity(
        [](const auto& t) { return checked_channels_last(upsample_nearest2d(channels_last(t[0]), {12, 14})); }, {x});
    for (const bool align : {false, true}) {
      CAPTURE(align);
      check_cuda_parity([=](const auto& t) {
        return checked_channels_last(upsample_bilinear2d(channels_last(t[0]), {13, 9}, align));
      }, {x});
    }
  }
  const Tensor x = bf16_exact_input({2, 16, 6, 7}, 32);
  check_cuda_parity([](const auto& t) {
    return to_f32(checked_channels_last(upsample_bilinear2d(channels_last(to_bf16(t[0])), {12, 14}, false)));
  }, {x}, kBf16ParityTolerance);
}

TEST_CASE("parity cuda cat channels last") {
  PNEUMA_REQUIRE_GPU();
  const Tensor a = parity_input({2, 3, 5, 6}, 33, DType::Float32), b = parity_input({2, 4, 5, 6}, 34, DType::Float32);
  check_cuda_parity(
      [](const auto& t) { return checked_channels_last(cat({channels_last(t[0]), channels_last(t[1])}, 1)); }, {a, b});
}

}  // TEST_SUITE
