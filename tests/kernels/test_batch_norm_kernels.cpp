// The batch norm kernels, executed by the CPU emulator through the Tensor-level launch code of the
// CUDA dispatch (engine/ops/norm/norm_kernels.h), against the CPU loops. Channel sums are double
// on both sides, added in other orders: results agree to rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_close;
using pneuma::testing::uniform_values;

namespace {

struct Geometry {
  int64_t N, C, S;
};

// Rows (S = 1), images, and long channels (several block strides); a large mean offset checks
// the two-pass variance.
const Geometry kGeometries[] = {{8, 5, 1}, {4, 3, 30}, {2, 2, 1000}, {3, 7, 17}};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated batch_norm", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Geometry g : kGeometries) {
    for (const bool affine : {true, false}) {
      for (const bool training : {true, false}) {
        CAPTURE(g.N);
        CAPTURE(g.C);
        CAPTURE(g.S);
        CAPTURE(affine);
        CAPTURE(training);
        const Tensor x = uniform_values({g.N, g.C, g.S}, 1, dtype, 95, 105);
        const Tensor weight = affine ? uniform_values({g.C}, 2, dtype, 0.5, 1.5) : Tensor();
        const Tensor bias = affine ? uniform_values({g.C}, 3, dtype, -1, 1) : Tensor();
        Tensor mean = Tensor::empty({g.C}, dtype), var = Tensor::empty({g.C}, dtype);
        if (training) {
          cpu::batch_norm_stats(x, g.N, g.C, g.S, mean, var);
          const Tensor mean_k = Tensor::empty({g.C}, dtype), var_k = Tensor::empty({g.C}, dtype);
          kern::run_batch_norm_stats(x, g.N, g.C, g.S, mean_k, var_k, kern::Stream{});
          require_close(mean, mean_k, "mean");
          require_close(var, var_k, "var");
        } else {
          mean = uniform_values({g.C}, 4, dtype, 95, 105);
          var = uniform_values({g.C}, 5, dtype, 0.5, 9);
        }
        const double eps = 1e-5;
        const Tensor y = Tensor::empty(x.shape(), dtype), y_k = Tensor::empty(x.shape(), dtype);
        cpu::batch_norm_apply(x, g.N, g.C, g.S, mean, var, weight, bias, eps, y);
        kern::run_batch_norm_apply(x, g.N, g.C, g.S, mean, var, weight, bias, eps, y_k, kern::Stream{});
        require_close(y, y_k, "y");

        const Tensor grad = uniform_values(x.shape(), 6, dtype, -1, 1);
        const Tensor dx = Tensor::empty(x.shape(), dtype), dx_k = Tensor::empty(x.shape(), dtype);
        const Tensor dw = affine ? Tensor::empty({g.C}, dtype) : Tensor(), dw_k = affine ? Tensor::empty({g.C}, dtype) : Tensor();
        const Tensor db = Tensor::empty({g.C}, dtype), db_k = Tensor::empty({g.C}, dtype);
        cpu::batch_norm_backward(x, grad, g.N, g.C, g.S, mean, var, weight, eps, training, dx, dw, db);
        kern::run_batch_norm_backward(x, grad, g.N, g.C, g.S, mean, var, weight, eps, training, dx_k, dw_k, db_k,
                                      kern::Stream{});
        require_close(dx, dx_k, "dx");
        if (affine) require_close(dw, dw_k, "dweight");
        require_close(db, db_k, "dbias");

        // Only the bias gradient: x and the statistics are not read.
        const Tensor db_only = Tensor::empty({g.C}, dtype);
        kern::run_batch_norm_backward(Tensor(), grad, g.N, g.C, g.S, Tensor(), Tensor(), Tensor(), eps, training,
                                      Tensor(), Tensor(), db_only, kern::Stream{});
        require_close(db, db_only, "dbias only");
      }
    }
  }
}

TEST_CASE("emulated batch_norm running statistics") {
  const Tensor mean = uniform_values({6}, 1, DType::Float32, -1, 1), var = uniform_values({6}, 2, DType::Float32, 0.5, 2);
  // A strided running mean (every other element of a buffer) and a contiguous running var.
  const Tensor mean_buffer = uniform_values({12}, 3, DType::Float32, -1, 1), var_buffer = uniform_values({6}, 4, DType::Float32, 1, 2);
  const Tensor running_mean = mean_buffer.clone().slice(0, 0, 12, 2), running_var = var_buffer.clone();
  const Tensor running_mean_k = mean_buffer.clone().slice(0, 0, 12, 2), running_var_k = var_buffer.clone();
  cpu::batch_norm_update_running(running_mean, running_var, mean, var, 0.1, 40);
  kern::run_batch_norm_update_running(running_mean_k, running_var_k, mean, var, 0.1, 40, kern::Stream{});
  CHECK(running_mean.to_vector() == running_mean_k.to_vector());
  CHECK(running_var.to_vector() == running_var_k.to_vector());
  // Only one of them.
  const Tensor only_var = var_buffer.clone(), only_var_k = var_buffer.clone();
  cpu::batch_norm_update_running(Tensor(), only_var, mean, var, 0.3, 7);
  kern::run_batch_norm_update_running(Tensor(), only_var_k, mean, var, 0.3, 7, kern::Stream{});
  CHECK(only_var.to_vector() == only_var_k.to_vector());
}

TEST_CASE("emulated batch_norm: any grid and block shape") {
  const Geometry g{3, 4, 70};
  const Tensor x = uniform_values({g.N, g.C, g.S}, 7, DType::Float64, -3, 3);
  const Tensor mean = Tensor::empty({g.C}, DType::Float64), var = Tensor::empty({g.C}, DType::Float64);
  cpu::batch_norm_stats(x, g.N, g.C, g.S, mean, var);
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{2, 33}, Launch{4, 64}, Launch{9, 1024}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    const Tensor mean_k = Tensor::empty({g.C}, DType::Float64), var_k = Tensor::empty({g.C}, DType::Float64);
    auto kernel = &kern::batch_norm_stats_kernel<double>;
    PNEUMA_LAUNCH(kernel, launch.blocks, launch.threads, 0, kern::Stream{}, x.data<double>(), g.N, g.C, g.S,
                  mean_k.data<double>(), var_k.data<double>());
    require_close(mean, mean_k, "mean");
    require_close(var, var_k, "var");
  }
  CHECK_THROWS_AS(kern::launch_batch_norm_stats<float>(nullptr, -1, 2, 2, nullptr, nullptr, kern::Stream{}),
                  std::invalid_argument);
}

}  // TEST_SUITE
