// softmax/log_softmax along any dim, forward and backward, executed by the CPU emulator through the
// Tensor-level launch code of the CUDA dispatch (engine/ops/softmax/softmax_kernels.h), against the
// CPU loops. Row sums are double on both sides but added in another order: near-equal, not bitwise.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/ops/softmax/softmax_cpu.h"
#include "engine/ops/softmax/softmax_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_close;

namespace {

struct Case {
  Shape shape;
  int64_t dim;
};

// Last dim (inner 1), middle dims (strided rows), first dim, one-element and long rows.
const Case kCases[] = {{{7, 33}, -1}, {{7, 33}, 0}, {{2, 5, 3, 4}, 1}, {{3, 1000}, 1}, {{4, 1}, 1}, {{6}, 0},
                       {{2, 3, 300}, 1}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated softmax and log_softmax along any dim", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Case& c : kCases) {
    for (const bool log : {false, true}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dim);
      CAPTURE(log);
      // Logits up to +-30 and a transposed storage for 2-d inputs.
      Tensor x = testing::uniform_values(c.shape, 3, dtype, -30, 30);
      if (c.shape.size() == 2) x = testing::uniform_values({c.shape[1], c.shape[0]}, 3, dtype, -30, 30).transpose(0, 1);
      const int64_t dim = wrap_dim(c.dim, x.dim(), "test");
      const Tensor expected = Tensor::empty(c.shape, dtype), actual = Tensor::empty(c.shape, dtype);
      cpu::softmax_forward(x, dim, log, expected);
      kern::run_softmax_forward(x, dim, log, actual, kern::Stream{});
      require_close(expected, actual);
    }
  }
}

TEST_CASE_TEMPLATE("emulated softmax backward", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Case& c : kCases) {
    for (const bool log : {false, true}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.dim);
      CAPTURE(log);
      const int64_t dim = wrap_dim(c.dim, static_cast<int64_t>(c.shape.size()), "test");
      const Tensor y = Tensor::empty(c.shape, dtype);
      cpu::softmax_forward(testing::uniform_values(c.shape, 4, dtype, -5, 5), dim, log, y);
      const Tensor g = testing::uniform_values(c.shape, 5, dtype, -1, 1);
      const Tensor expected = Tensor::empty(c.shape, dtype), actual = Tensor::empty(c.shape, dtype);
      cpu::softmax_backward(y, g, dim, log, expected);
      kern::run_softmax_backward(y, g, dim, log, actual, kern::Stream{});
      require_close(expected, actual);
    }
  }
}

TEST_CASE("emulated softmax: any grid and block shape") {
  // [outer 3, n 50, inner 4]: 12 rows, elements 4 apart.
  const Tensor x = testing::uniform_values({3, 50, 4}, 6, DType::Float64, -10, 10);
  const Tensor g = testing::uniform_values({3, 50, 4}, 7, DType::Float64, -1, 1);
  const Tensor expected = Tensor::empty(x.shape(), DType::Float64), expected_dx = Tensor::empty(x.shape(), DType::Float64);
  cpu::softmax_forward(x, 1, false, expected);
  cpu::softmax_backward(expected, g, 1, false, expected_dx);
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{5, 33}, Launch{12, 64}, Launch{40, 17}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    const Tensor y = Tensor::empty(x.shape(), DType::Float64), dx = Tensor::empty(x.shape(), DType::Float64);
    auto forward = &kern::softmax_kernel<double>;
    PNEUMA_LAUNCH(forward, launch.blocks, launch.threads, 0, kern::Stream{}, x.data<double>(), y.data<double>(),
                  int64_t{3}, int64_t{50}, int64_t{4}, false);
    require_close(expected, y);
    auto backward = &kern::softmax_backward_kernel<double>;
    PNEUMA_LAUNCH(backward, launch.blocks, launch.threads, 0, kern::Stream{}, expected.data<double>(), g.data<double>(),
                  dx.data<double>(), int64_t{3}, int64_t{50}, int64_t{4}, false);
    require_close(expected_dx, dx);
  }
  CHECK_THROWS_AS(kern::launch_softmax<float>(nullptr, nullptr, 1, -2, 1, false, kern::Stream{}), std::invalid_argument);
}

}  // TEST_SUITE
