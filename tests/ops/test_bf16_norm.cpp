// bfloat16 batch norm on the CPU, forward and backward, against the float32 oracle: the same op in
// float32 on the bf16-rounded input and output gradient. Two parameter dtypes, as in torch: float32
// weight/bias/running statistics (a BatchNorm under autocast; oneDNN's bf16 kernels), and bfloat16
// ones (a model converted with .to(bfloat16); the reference loops computing in float).
//
// Tolerances.
// - bf16 tensors (output, input gradient; with bf16 parameters also their gradients and the
//   running statistics): the op computes in float and rounds once, so it is within half a bf16 ulp
//   (2^-9 relative) of the float32 oracle plus the float32 rounding of the per-channel sums. The
//   check allows one bf16 ulp (2^-8) of the value plus 2e-3 of the tensor's largest magnitude: the
//   input gradient (g - mean(g) - xhat * mean(g * xhat)) * w * invstd cancels to near zero, and its
//   inputs (mean, invstd, the two means) carry float32 sum errors of ~1e-6 relative; with bf16
//   parameters the weight and the bias are themselves rounded, which the oracle shares.
// - float32 statistics and parameter gradients: sums of the same bf16 values in float (the op) and
//   in double (the float32 oracle). Over count <= 2000 values in 16 lanes the float error is a few
//   1e-7 of sum|terms|; sum|terms| is at most ~|mean| + 3 std per element for the statistics and
//   ~sqrt(count) times the result for gradients that cancel, hence 1e-5 relative + 1e-5 of the
//   largest magnitude for the statistics and 1e-4 of each for the gradients.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cpu/onednn_context.h"
#include "tests/support/cuda.h"
#include "engine/nn/layers.h"
#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_onednn.h"
#include "engine/pneuma.h"
#include "tests/data/data_util.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;

namespace {

constexpr double kBf16Relative = 1.0 / 256;  // one bf16 ulp of the value
constexpr double kBf16AbsoluteFraction = 2e-3;

// Uniform values in [lo, hi) rounded to bfloat16, held in float32: the oracle's inputs, which the
// bf16 op receives exactly.
Tensor rounded_values(const Shape& shape, uint64_t seed, double lo, double hi) {
  std::vector<double> v = Tensor::rand(shape, seed, DType::Float64).to_vector();
  for (double& x : v) x = lo + (hi - lo) * x;
  return Tensor::from_vector(v, shape, DType::Float32).to(DType::BFloat16).to(DType::Float32);
}


// Every element of actual within relative * |expected| + fraction * max|expected| of expected
// (float32); actual's dtype as given. Reports the first element outside.
void require_close_to_oracle(const Tensor& expected, const Tensor& actual, DType actual_dtype, double relative,
                             double fraction, const char* what) {
  REQUIRE(actual.defined());
  REQUIRE(dtype_name(actual.dtype()) == std::string(dtype_name(actual_dtype)));
  REQUIRE(expected.dtype() == DType::Float32);
  pneuma::testing::require_near_scaled(expected, actual, relative, fraction, what);
}

void require_bf16_close(const Tensor& expected, const Tensor& actual, const char* what) {
  require_close_to_oracle(expected, actual, DType::BFloat16, kBf16Relative, kBf16AbsoluteFraction, what);
}

struct Config {
  Shape shape;
  bool training, weight, bias, running;
};

// Rows, images with and without affine parameters, eval with running statistics, and a longer
// channel (2000 values) for the float sums.
const Config kConfigs[] = {
    {{4, 8, 6, 5}, true, true, true, true},   {{16, 5}, true, true, true, true},
    {{3, 4, 7}, true, false, false, false},  {{2, 6, 5, 5}, true, true, false, true},
    {{8, 2, 25, 10}, true, true, true, true}, {{4, 8, 6, 5}, false, true, true, true},
    {{8, 3}, false, false, true, true},       {{2, 3, 4, 4}, false, true, false, true},
};

// One batch_norm in float32 on the rounded values (the oracle) and one on bf16 data with
// parameters of param_dtype; forward, running statistics and backward compared.
void check_against_oracle(const Config& c, DType param_dtype) {
  CAPTURE(shape_str(c.shape));
  CAPTURE(c.training);
  CAPTURE(c.weight);
  CAPTURE(c.bias);
  const std::string params = dtype_name(param_dtype);
  CAPTURE(params);
  const int64_t C = c.shape[1];
  const bool bf16_params = param_dtype == DType::BFloat16;
  // Per-channel tensors rounded to bf16 when they are bf16 in the op, so the oracle has the same values.
  const auto channel = [&](uint64_t seed, double lo, double hi) {
    const Tensor t = rounded_values({C}, seed, lo, hi);
    return bf16_params ? t : (Tensor::rand({C}, seed, DType::Float64) * (hi - lo) + lo).to(DType::Float32);
  };
  // A mean offset of 3 against a spread of about 2 exercises the two-pass variance.
  const Tensor x32 = rounded_values(c.shape, 1, 2, 6.5);
  const Tensor g32 = rounded_values(c.shape, 2, -1, 1);
  const Tensor w32 = c.weight ? channel(3, 0.5, 1.5) : Tensor();
  const Tensor b32 = c.bias ? channel(4, -1, 1) : Tensor();
  const Tensor rm32 = c.running ? channel(5, 3, 5) : Tensor();
  const Tensor rv32 = c.running ? channel(6, 0.5, 2) : Tensor();

  const auto leaf = [](const Tensor& t, DType dtype) {
    return t.defined() ? t.to(dtype).detach().set_requires_grad(true) : Tensor();
  };
  const auto buffer = [](const Tensor& t, DType dtype) { return t.defined() ? t.to(dtype).detach().clone() : Tensor(); };

  const Tensor xo = leaf(x32, DType::Float32), wo = leaf(w32, DType::Float32), bo = leaf(b32, DType::Float32);
  const Tensor rmo = buffer(rm32, DType::Float32), rvo = buffer(rv32, DType::Float32);
  const Tensor yo = batch_norm(xo, rmo, rvo, wo, bo, c.training, 0.1, 1e-5);
  yo.backward(g32);

  const Tensor x = leaf(x32, DType::BFloat16), w = leaf(w32, param_dtype), b = leaf(b32, param_dtype);
  const Tensor rm = buffer(rm32, param_dtype), rv = buffer(rv32, param_dtype);
  const Tensor y = batch_norm(x, rm, rv, w, b, c.training, 0.1, 1e-5);
  REQUIRE(y.dtype() == DType::BFloat16);
  y.backward(g32.to(DType::BFloat16));

  require_bf16_close(yo, y, "output");
  require_bf16_close(xo.grad(), x.grad(), "input gradient");
  if (c.running) {
    if (bf16_params) {
      require_bf16_close(rmo, rm, "running_mean");
      require_bf16_close(rvo, rv, "running_var");
    } else {
      require_close_to_oracle(rmo, rm, DType::Float32, 1e-5, 1e-5, "running_mean");
      require_close_to_oracle(rvo, rv, DType::Float32, 1e-5, 1e-5, "running_var");
    }
  }
  if (c.weight) {
    if (bf16_params) require_bf16_close(wo.grad(), w.grad(), "weight gradient");
    else require_close_to_oracle(wo.grad(), w.grad(), DType::Float32, 1e-4, 1e-4, "weight gradient");
  }
  if (c.bias) {
    if (bf16_params) require_bf16_close(bo.grad(), b.grad(), "bias gradient");
    else require_close_to_oracle(bo.grad(), b.grad(), DType::Float32, 1e-4, 1e-4, "bias gradient");
  }
}

}  // namespace

TEST_CASE("bfloat16 batch_norm forward and backward with float32 parameters") {
  for (const Config& c : kConfigs) check_against_oracle(c, DType::Float32);
}

TEST_CASE("bfloat16 batch_norm forward and backward with bfloat16 parameters") {
  for (const Config& c : kConfigs) check_against_oracle(c, DType::BFloat16);
}

// The reference loops on bf16 data with float32 parameters, which batch_norm leaves to oneDNN on
// the CPU: called directly, against the same loops in float32 on the rounded values.
TEST_CASE("bfloat16 batch_norm reference loops with float32 parameters") {
  for (const Config& c : kConfigs) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.training);
    const int64_t N = c.shape[0], C = c.shape[1], S = numel_of(c.shape) / (N * C);
    const Tensor x32 = rounded_values(c.shape, 7, -2, 3), g32 = rounded_values(c.shape, 8, -1, 1);
    const Tensor x = x32.to(DType::BFloat16), g = g32.to(DType::BFloat16);
    const Tensor w = c.weight ? Tensor::rand({C}, 9) + 0.5 : Tensor();
    const Tensor b = c.bias ? Tensor::randn({C}, 10) : Tensor();
    Tensor mean = Tensor::rand({C}, 11) - 0.5, var = Tensor::rand({C}, 12) + 0.5;
    Tensor mean_o = mean.clone(), var_o = var.clone();
    if (c.training) {
      cpu::batch_norm_stats(x, N, C, S, mean, var);
      cpu::batch_norm_stats(x32, N, C, S, mean_o, var_o);
      require_close_to_oracle(mean_o, mean, DType::Float32, 1e-5, 1e-5, "mean");
      require_close_to_oracle(var_o, var, DType::Float32, 1e-5, 1e-5, "var");
    }
    const Tensor y = Tensor::empty(c.shape, DType::BFloat16), y_o = Tensor::empty(c.shape);
    cpu::batch_norm_apply(x, N, C, S, mean, var, w, b, 1e-5, y);
    cpu::batch_norm_apply(x32, N, C, S, mean_o, var_o, w, b, 1e-5, y_o);
    require_bf16_close(y_o, y, "output");
    const Tensor dx = Tensor::empty(c.shape, DType::BFloat16), dx_o = Tensor::empty(c.shape);
    const Tensor dw = Tensor::empty({C}), dw_o = Tensor::empty({C}), db = Tensor::empty({C}), db_o = Tensor::empty({C});
    cpu::batch_norm_backward(x, g, N, C, S, mean, var, w, 1e-5, c.training, dx, dw, db);
    cpu::batch_norm_backward(x32, g32, N, C, S, mean_o, var_o, w, 1e-5, c.training, dx_o, dw_o, db_o);
    require_bf16_close(dx_o, dx, "input gradient");
    require_close_to_oracle(dw_o, dw, DType::Float32, 1e-4, 1e-4, "weight gradient");
    require_close_to_oracle(db_o, db, DType::Float32, 1e-4, 1e-4, "bias gradient");
    // Only the bias gradient: a float sum of g.
    const Tensor db_only = Tensor::empty({C});
    cpu::batch_norm_backward(Tensor(), g, N, C, S, Tensor(), Tensor(), Tensor(), 1e-5, c.training, Tensor(), Tensor(),
                             db_only);
    require_close_to_oracle(db_o, db_only, DType::Float32, 1e-4, 1e-4, "bias gradient only");
  }
}

// What autocast does to a ResNet block's BatchNorm2d: bf16 activations through a module whose
// parameters and buffers stay float32.
TEST_CASE("bfloat16 batch_norm through BatchNorm2d keeps float32 parameters") {
  nn::BatchNorm2d bn(3);
  bn.train();
  const Tensor x = rounded_values({2, 3, 4, 4}, 13, -1, 2).to(DType::BFloat16);
  const Tensor y = bn.forward(x);
  CHECK(y.dtype() == DType::BFloat16);
  CHECK(bn.running_mean.dtype() == DType::Float32);
  const std::vector<double> rm = bn.running_mean.to_vector();
  CHECK(rm[0] != 0);  // updated from the batch
  y.backward(rounded_values({2, 3, 4, 4}, 14, -1, 1).to(DType::BFloat16));
  REQUIRE(bn.weight.grad().defined());
  CHECK(bn.weight.grad().dtype() == DType::Float32);
  CHECK(bn.bias.grad().dtype() == DType::Float32);
  bn.eval();
  CHECK(bn.forward(x).dtype() == DType::BFloat16);
}

TEST_CASE("bfloat16 batch_norm errors name the op and the tensors") {
  const Tensor x = Tensor::zeros({2, 3, 4, 4}, DType::BFloat16);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor::zeros({3}, DType::Float64), true),
                       "batch_norm: bias float64[3] on cpu does not match the dtype of input bfloat16[2, 3, 4, 4] on "
                       "cpu (a bfloat16 input takes bfloat16 or float32 parameters)",
                       Error);
  CHECK_THROWS_WITH_AS(batch_norm(x, Tensor(), Tensor(), Tensor::ones({3}), Tensor::zeros({3}, DType::BFloat16), true),
                       "batch_norm: bias bfloat16[3] on cpu does not match the dtype of weight float32[3] on cpu: "
                       "weight, bias, running_mean and running_var share one dtype",
                       Error);
  // A float32 input never takes bfloat16 parameters (torch neither).
  CHECK_THROWS_WITH_AS(batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), Tensor::ones({3}).to(DType::BFloat16),
                                  Tensor(), true),
                       "batch_norm: weight bfloat16[3] on cpu does not match the dtype of input float32[2, 3] on cpu",
                       Error);
}


TEST_SUITE("parity") {
  // Against torch 1.13 on the same bf16 data. Under autocast (float32 parameters) and in evaluation
  // torch computes as this op does (float statistics, one rounding on store): bf16 results agree
  // within one bf16 ulp (they are equal here but for summation order), float32 ones within float
  // sum rounding. All-bf16 training is left out: torch rounds the batch statistics to bf16 before
  // normalizing (its save_mean is bf16), this op keeps them float32 (norm_types.h), which moves
  // outputs by up to |mean| 2^-9 / std.
  TEST_CASE("parity batch_norm bfloat16 against torch") {
    struct TorchCase {
      Shape shape;
      DType params;
      bool training;
    };
    const TorchCase cases[] = {{{4, 3, 5, 7}, DType::Float32, true},
                               {{16, 6}, DType::Float32, true},
                               {{4, 3, 5, 7}, DType::Float32, false},
                               {{4, 3, 5, 7}, DType::BFloat16, false}};
    const auto to_json = [](const Tensor& t) { return nlohmann::json{{"shape", t.shape()}, {"values", t.to_vector()}}; };
    struct Run {
      Tensor x, w, b, rm, rv, y;
    };
    std::vector<Run> runs;
    nlohmann::json request = nlohmann::json::array();
    for (const TorchCase& c : cases) {
      const int64_t C = c.shape[1];
      const Tensor x = rounded_values(c.shape, 21, 1, 4), g = rounded_values(c.shape, 22, -1, 1);
      const Tensor w = rounded_values({C}, 23, 0.5, 1.5), b = rounded_values({C}, 24, -1, 1);
      const Tensor rm = rounded_values({C}, 25, 1, 3), rv = rounded_values({C}, 26, 0.5, 2);
      Run r;
      r.x = x.to(DType::BFloat16).detach().set_requires_grad(true);
      r.w = w.to(c.params).detach().set_requires_grad(true);
      r.b = b.to(c.params).detach().set_requires_grad(true);
      r.rm = rm.to(c.params).detach().clone();
      r.rv = rv.to(c.params).detach().clone();
      r.y = batch_norm(r.x, r.rm, r.rv, r.w, r.b, c.training, 0.1, 1e-5);
      r.y.backward(g.to(DType::BFloat16));
      runs.push_back(r);
      request.push_back({{"x", to_json(x)}, {"grad", to_json(g)}, {"weight", to_json(w)}, {"bias", to_json(b)},
                         {"running_mean", to_json(rm)}, {"running_var", to_json(rv)},
                         {"params", dtype_name(c.params)}, {"training", c.training}});
    }
    testing::TempDir dir("bf16-norm-torch");
    testing::write_text(dir / "cases.json", request.dump());
    std::string text;
    const std::string command =
        "/usr/bin/python3 " PNEUMA_SOURCE_DIR "/tests/ops/bf16_norm_torch.py " + (dir / "cases.json");
    REQUIRE_MESSAGE(testing::run_command(command, &text) == 0, command, " failed: ", text);
    const nlohmann::json torch = nlohmann::json::parse(text);
    REQUIRE(torch.size() == runs.size());
    for (size_t k = 0; k < runs.size(); ++k) {
      CAPTURE(k);
      const auto theirs = [&](const char* key, const Tensor& like) {
        return Tensor::from_vector(torch[k].at(key).get<std::vector<double>>(), like.shape(), DType::Float32);
      };
      const auto check = [&](const char* key, const Tensor& ours) {
        if (ours.dtype() == DType::BFloat16) {
          require_close_to_oracle(theirs(key, ours), ours, DType::BFloat16, kBf16Relative, 1e-3, key);
        } else {
          require_close_to_oracle(theirs(key, ours), ours, DType::Float32, 1e-5, 1e-5, key);
        }
      };
      const Run& r = runs[k];
      check("output", r.y);
      check("grad_input", r.x.grad());
      check("grad_weight", r.w.grad());
      check("grad_bias", r.b.grad());
      check("running_mean", r.rm);
      check("running_var", r.rv);
    }
  }
}

TEST_SUITE("fastpath") {
  // oneDNN's bf16 batch norm (bf16 data, float32 per-channel tensors; norm_onednn.h) against the
  // reference loops on the same NHWC memory: each buffer read as [N, S, C], N * S rows of C for the
  // loops. Both compute in float: bf16 results within one bf16 ulp, float32 ones within float sum
  // rounding.
  TEST_CASE("fastpath batch_norm bfloat16") {
  if (!cpu::onednn_supports_bfloat16()) return testing::skip_test("oneDNN has no bfloat16 kernels on this CPU");
    for (const Config& c : kConfigs) {
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.training);
      const int64_t N = c.shape[0], C = c.shape[1], S = numel_of(c.shape) / (N * C);
      const Tensor x = rounded_values(c.shape, 15, -2, 3).to(DType::BFloat16);
      const Tensor g = rounded_values(c.shape, 16, -1, 1).to(DType::BFloat16);
      const Tensor w = c.weight ? Tensor::rand({C}, 17) + 0.5 : Tensor();
      const Tensor b = c.bias ? Tensor::randn({C}, 18) : Tensor();
      Tensor mean_d = Tensor::rand({C}, 19) - 0.5, var_d = Tensor::rand({C}, 20) + 0.5;
      Tensor mean_r = mean_d.clone(), var_r = var_d.clone();
      const Tensor y_d = Tensor::empty(c.shape, DType::BFloat16), y_r = Tensor::empty(c.shape, DType::BFloat16);
      cpu::batch_norm_forward_onednn(x, N, C, S, mean_d, var_d, w, b, 1e-5, c.training, y_d);
      if (c.training) cpu::batch_norm_stats(x, N * S, C, 1, mean_r, var_r);
      cpu::batch_norm_apply(x, N * S, C, 1, mean_r, var_r, w, b, 1e-5, y_r);
      require_close_to_oracle(mean_r, mean_d, DType::Float32, 1e-5, 1e-5, "mean");
      require_close_to_oracle(var_r, var_d, DType::Float32, 1e-5, 1e-5, "var");
      require_close_to_oracle(y_r.to(DType::Float32), y_d, DType::BFloat16, kBf16Relative, 1e-3, "output");

      const Tensor dx_d = Tensor::empty(c.shape, DType::BFloat16), dx_r = Tensor::empty(c.shape, DType::BFloat16);
      const Tensor dw_d = c.weight ? Tensor::empty({C}) : Tensor(), dw_r = c.weight ? Tensor::empty({C}) : Tensor();
      const Tensor db_d = c.bias ? Tensor::empty({C}) : Tensor(), db_r = c.bias ? Tensor::empty({C}) : Tensor();
      cpu::batch_norm_backward_onednn(x, g, N, C, S, mean_d, var_d, w, c.bias, 1e-5, c.training, dx_d, dw_d, db_d);
      cpu::batch_norm_backward(x, g, N * S, C, 1, mean_r, var_r, w, 1e-5, c.training, dx_r, dw_r, db_r);
      require_close_to_oracle(dx_r.to(DType::Float32), dx_d, DType::BFloat16, kBf16Relative, 1e-3, "input gradient");
      if (c.weight) require_close_to_oracle(dw_r, dw_d, DType::Float32, 1e-4, 1e-4, "weight gradient");
      if (c.bias) require_close_to_oracle(db_r, db_d, DType::Float32, 1e-4, 1e-4, "bias gradient");
    }
  }
}
