// Whole models moved to the GPU with Module::to and run there against the same weights on the CPU.
#include <doctest/doctest.h>

#include "tests/cuda/cuda_model_parity.h"

using namespace pneuma;
using testing::check_autocast_parity;
using testing::check_model_parity;

TEST_SUITE("cuda") {
  TEST_CASE("parity cuda resnet18 forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("resnet18", 64, 3);
  }
  TEST_CASE("parity cuda resnet18 autocast bfloat16") {
    PNEUMA_REQUIRE_GPU();
    check_autocast_parity("resnet18", 64);
  }
  TEST_CASE("parity cuda resnet50 autocast bfloat16") {
    PNEUMA_REQUIRE_GPU();
    check_autocast_parity("resnet50", 64);
  }
  TEST_CASE("parity cuda densenet121 forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("densenet121", 64, 3);
  }
  TEST_CASE("parity cuda unet forward and backward") {
    PNEUMA_REQUIRE_GPU();
    check_model_parity("unet", 64, 1);
  }
}
