#include <doctest/doctest.h>

#include "engine/pneuma.h"
#include "tests/support/cuda.h"

using namespace pneuma;

TEST_SUITE("cuda") {
  TEST_CASE("cuda tensors round-trip through device memory") {
    PNEUMA_REQUIRE_GPU();
    const Tensor x = Tensor::randn({3, 5}, 11);
    const Tensor on_gpu = x.to(Device::cuda());
    CHECK(on_gpu.device() == Device::cuda());
    CHECK(on_gpu.to(Device::cpu()).to_vector() == x.to_vector());
    // a non-contiguous view is packed before the copy
    CHECK(x.transpose(0, 1).to(Device::cuda()).to(Device::cpu()).to_vector() == x.transpose(0, 1).contiguous().to_vector());
  }

  // Every op now has a CUDA path (losses included); what a CUDA kernel cannot compute it refuses
  // by name and dtype, with no implicit CPU fallback.
  TEST_CASE("CUDA ops refuse a dtype they cannot compute by name") {
    PNEUMA_REQUIRE_GPU();
    const Tensor x = Tensor::zeros({4}, DType::Float16, Device::cuda());
    const Tensor index = Tensor::from_indices({0, 2}, {2}).to(Device::cuda());
    CHECK_THROWS_WITH_AS(gather(x, 0, index), doctest::Contains("gather (CUDA): unsupported dtype float16"), Error);
    CHECK_THROWS_WITH_AS(index_select(x, 0, index), doctest::Contains("index_select (CUDA): unsupported dtype float16"),
                         Error);
  }
}
