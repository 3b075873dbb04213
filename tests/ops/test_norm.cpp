#include <doctest/doctest.h>

#include <cmath>

#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_onednn.h"
#include "tests/support/gradcheck.h"
#include "tests/support/parity.h"

using namespace pneuma;
using pneuma::testing::check_close;
using pneuma::testing::check_parity;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck batch_norm") {
    SUBCASE("training, affine, 4-d, running stats updated alongside") {
      Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
      gradcheck([&](const auto& x) { return batch_norm(x[0], rm, rv, x[1], x[2], true, 0.1, 1e-5); },
                {random_input({3, 3, 4, 2}, 1, -2, 3), random_input({3}, 2, 0.5, 1.5), random_input({3}, 3)});
    }
    SUBCASE("training, no affine, 2-d") {
      gradcheck([](const auto& x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                {random_input({6, 4}, 4)});
    }
    SUBCASE("training, weight only, 3-d, eps 1e-3") {
      gradcheck([](const auto& x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], Tensor(), true, 0.1, 1e-3); },
                {random_input({2, 3, 5}, 5), random_input({3}, 6, 0.5, 1.5)});
    }
    SUBCASE("training, bias only, 4-d, batch of one") {
      gradcheck([](const auto& x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), x[1], true); },
                {random_input({1, 2, 3, 3}, 7), random_input({2}, 8)});
    }
    SUBCASE("training, gradients for weight and bias only") {
      const Tensor x = random_input({3, 2, 4}, 17, -1, 1, false);
      gradcheck([&](const auto& p) { return batch_norm(x, Tensor(), Tensor(), p[0], p[1], true); },
                {random_input({2}, 18, 0.5, 1.5), random_input({2}, 19)});
      gradcheck([&](const auto& p) { return batch_norm(x, Tensor(), Tensor(), Tensor(), p[0], true); },
                {random_input({2}, 20)});
    }
    SUBCASE("eval, affine, 4-d") {
      const Tensor rm = random_input({3}, 9, -1, 1, false), rv = random_input({3}, 10, 0.5, 2, false);
      gradcheck([&](const auto& x) { return batch_norm(x[0], rm, rv, x[1], x[2], false, 0.1, 1e-4); },
                {random_input({2, 3, 3, 2}, 11), random_input({3}, 12, 0.5, 1.5), random_input({3}, 13)});
    }
    SUBCASE("eval, no affine, 2-d") {
      const Tensor rm = random_input({4}, 14, -1, 1, false), rv = random_input({4}, 15, 0.5, 2, false);
      gradcheck([&](const auto& x) { return batch_norm(x[0], rm, rv, Tensor(), Tensor(), false); },
                {random_input({5, 4}, 16)});
    }
  }
}

TEST_CASE("batch_norm values and running statistics") {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    CAPTURE(dtype_name(dtype));
    // x[n, c, s]: 2 samples, 2 channels, 2 positions.
    const Tensor x = Tensor::from_vector({1, 2, 10, 20, 3, 6, 30, 50}, {2, 2, 2}, dtype);
    Tensor rm = Tensor::from_vector({1, -1}, {2}, dtype), rv = Tensor::from_vector({2, 4}, {2}, dtype);
    const Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.3, 0.0);
    // channel 0: {1, 2, 3, 6}: mean 3, biased var 3.5, unbiased 14/3; channel 1: {10, 20, 30, 50}: mean 27.5,
    // biased var 218.75, unbiased 291.666...
    const double s0 = std::sqrt(3.5), s1 = std::sqrt(218.75);
    check_close(y, Tensor::from_vector({-2 / s0, -1 / s0, -17.5 / s1, -7.5 / s1, 0, 3 / s0, 2.5 / s1, 22.5 / s1},
                                       {2, 2, 2}, DType::Float64), 1e-5, 1e-6);
    check_close(rm, Tensor::from_vector({0.7 * 1 + 0.3 * 3, 0.7 * -1 + 0.3 * 27.5}, {2}, DType::Float64), 1e-6, 1e-6);
    check_close(rv, Tensor::from_vector({0.7 * 2 + 0.3 * 14.0 / 3, 0.7 * 4 + 0.3 * 875.0 / 3}, {2}, DType::Float64),
                1e-6, 1e-6);
    // Eval mode reads the (updated) running statistics and leaves them alone.
    const Tensor rm_before = rm.clone(), rv_before = rv.clone();
    const Tensor w = Tensor::from_vector({2, 0.5}, {2}, dtype), b = Tensor::from_vector({1, -1}, {2}, dtype);
    const Tensor e = batch_norm(x, rm, rv, w, b, false, 0.3, 1e-5);
    const std::vector<double> m = rm.to_vector(), v = rv.to_vector(), xs = x.to_vector();
    std::vector<double> expected;
    for (int64_t i = 0; i < 8; ++i) {
      const int64_t c = (i / 2) % 2;
      expected.push_back((xs[i] - m[c]) / std::sqrt(v[c] + 1e-5) * (c == 0 ? 2 : 0.5) + (c == 0 ? 1 : -1));
    }
    check_close(e, Tensor::from_vector(expected, {2, 2, 2}, DType::Float64), 1e-5, 1e-6);
    check_close(rm, rm_before, 0, 0);
    check_close(rv, rv_before, 0, 0);
  }
}

TEST_CASE("batch_norm running statistics stay out of the graph") {
  Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
  const Tensor x = random_input({4, 3}, 1);
  const Tensor w = random_input({3}, 2);
  const Tensor y = batch_norm(x, rm, rv, w, Tensor(), true);
  CHECK(y.requires_grad());
  CHECK_FALSE(rm.requires_grad());
  CHECK_FALSE(rv.requires_grad());
  CHECK(rm.grad_fn() == nullptr);
  sum(y).backward();
  CHECK(x.grad().defined());
  CHECK(w.grad().defined());
  // A non-contiguous running buffer is updated in place too.
  Tensor buffer = Tensor::zeros({3, 2}, DType::Float64);
  Tensor column = buffer.select(1, 1);
  batch_norm(x.detach(), column, Tensor(), Tensor(), Tensor(), true, 1.0);
  const std::vector<double> b = buffer.to_vector();
  CHECK(b[0] == 0);
  CHECK(b[1] != 0);
}

TEST_SUITE("fastpath") {
  // oneDNN's batch norm (norm_onednn.h) against the reference loops on the same NHWC memory: each
  // tensor's buffer read as [N, S, C] (channels innermost), which the loops see as N * S rows of C.
  TEST_CASE("fastpath batch_norm") {
    struct Config {
      Shape shape;
      bool training, weight, bias;
    };
    for (const Config& c : {Config{{4, 8, 6, 5}, true, true, true}, Config{{16, 5}, true, true, true},
                            Config{{3, 4, 7}, true, false, false}, Config{{2, 6, 5, 5}, true, true, false},
                            Config{{4, 8, 6, 5}, false, true, true}, Config{{8, 3}, false, false, true}}) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.training);
      const int64_t N = c.shape[0], C = c.shape[1], S = numel_of(c.shape) / (N * C);
      const Tensor x = Tensor::randn(c.shape, 1, DType::Float32) * 2.0 + 0.5;
      const Tensor w = c.weight ? Tensor::rand({C}, 2, DType::Float32) + 0.5 : Tensor();
      const Tensor b = c.bias ? Tensor::randn({C}, 3, DType::Float32) : Tensor();
      const Tensor g = Tensor::randn(c.shape, 6, DType::Float32);
      const double eps = 1e-5;
      Tensor mean_f = c.training ? Tensor::empty({C}) : Tensor::randn({C}, 4);
      Tensor var_f = c.training ? Tensor::empty({C}) : Tensor::rand({C}, 5) + 0.5;
      Tensor mean_r = c.training ? Tensor::empty({C}) : mean_f;
      Tensor var_r = c.training ? Tensor::empty({C}) : var_f;
      Tensor y_f = Tensor::empty(c.shape), y_r = Tensor::empty(c.shape);
      cpu::batch_norm_forward_onednn(x, N, C, S, mean_f, var_f, w, b, eps, c.training, y_f);
      if (c.training) cpu::batch_norm_stats(x, N * S, C, 1, mean_r, var_r);
      cpu::batch_norm_apply(x, N * S, C, 1, mean_r, var_r, w, b, eps, y_r);
      check_close(mean_f, mean_r, 1e-5, 1e-6);
      check_close(var_f, var_r, 1e-5, 1e-6);  // both biased
      check_close(y_f, y_r, 1e-4, 1e-5);

      Tensor dx_f = Tensor::empty(c.shape), dx_r = Tensor::empty(c.shape);
      Tensor dw_f = c.weight ? Tensor::empty({C}) : Tensor(), dw_r = c.weight ? Tensor::empty({C}) : Tensor();
      Tensor db_f = c.bias ? Tensor::empty({C}) : Tensor(), db_r = c.bias ? Tensor::empty({C}) : Tensor();
      cpu::batch_norm_backward_onednn(x, g, N, C, S, mean_f, var_f, w, c.bias, eps, c.training, dx_f, dw_f, db_f);
      cpu::batch_norm_backward(x, g, N * S, C, 1, mean_r, var_r, w, eps, c.training, dx_r, dw_r, db_r);
      check_close(dx_f, dx_r, 1e-3, 1e-4);
      if (c.weight) check_close(dw_f, dw_r, 1e-3, 1e-3);
      if (c.bias) check_close(db_f, db_r, 1e-4, 1e-4);
    }
  }
}

TEST_SUITE("parity") {
  TEST_CASE("parity batch_norm") {
    for (DType dtype : {DType::Float64, DType::Float32}) {
      const double rtol = dtype == DType::Float64 ? 1e-9 : 1e-4, atol = dtype == DType::Float64 ? 1e-10 : 1e-4;
      check_parity("batch_norm_train_4d", [](const auto& x) {
        return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true, 0.1, 1e-5);
      }, dtype, rtol, atol);
      check_parity("batch_norm_train_2d", [](const auto& x) {
        return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true, 0.1, 1e-3);
      }, dtype, rtol, atol);
      check_parity("batch_norm_train_3d_no_affine", [](const auto& x) {
        return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true);
      }, dtype, rtol, atol);
      check_parity("batch_norm_eval_4d", [](const auto& x) {
        return batch_norm(x[0], x[1], x[2], x[3], x[4], false, 0.1, 1e-4);
      }, dtype, rtol, atol);
      check_parity("batch_norm_running_stats", [](const auto& x) {
        Tensor rm = x[1].clone(), rv = x[2].clone();
        batch_norm(x[0], rm, rv, Tensor(), Tensor(), true, 0.3);
        std::vector<double> both = rm.to_vector();
        for (double v : rv.to_vector()) both.push_back(v);
        return Tensor::from_vector(both, {2, rm.numel()}, rm.dtype());
      }, dtype, rtol, atol);
    }
  }
}

TEST_CASE("batch_norm errors name the op and the shapes") {
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor::ones({4}), Tensor(), true),
                       "batch_norm: weight float32[4] on cpu should be 1-d with 3 elements: input float32[2, 3, 4, 4] "
                       "on cpu has 3 channels",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor::zeros({2}), Tensor::ones({3}), Tensor(), Tensor(), false),
                       "batch_norm: running_mean float32[2] on cpu should be 1-d with 3 elements: input "
                       "float32[2, 3, 4, 4] on cpu has 3 channels",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor::zeros({3}, DType::Float64), true),
                       "batch_norm: bias float64[3] on cpu does not match the dtype of input float32[2, 3, 4, 4] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       "batch_norm: expected more than 1 value per channel when training, got input float32[1, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false),
                       "batch_norm: running_mean and running_var must be defined in evaluation mode (training=false)",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({5}), Tensor(), Tensor(), Tensor(), Tensor(), true),
                       "batch_norm: expected an input with channels in dim 1 ([N, C], [N, C, L], [N, C, H, W]), got "
                       "float32[5] on cpu",
                       Error);
  CHECK_THROWS_AS(batch_norm(Tensor::zeros({2, 3}, DType::Int64), Tensor(), Tensor(), Tensor(), Tensor(), true), Error);
}
