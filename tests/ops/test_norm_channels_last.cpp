// Batch norm on channels-last (NHWC in memory) input on the CPU: the output and the input gradient
// keep the layout as PyTorch 1.13's do, and the values agree with the NCHW path's.
//
// Tolerances. Channels-last float32 (and bfloat16 with float32 parameters) runs oneDNN's nhwc
// kernels (norm_onednn.h), which sum in float; the NCHW path runs the loops, summing in double. The
// two agree as "fastpath batch_norm" has them agree: statistics within 1e-5 relative, the output
// within 1e-4, gradients (which cancel: g - mean(g) - xhat * mean(g * xhat)) within 1e-3. The row
// loops themselves (float64, bfloat16 parameters, [N, C] inputs, the CUDA kernels' reference) sum
// each channel in row blocks where the NCHW loops sum along its planes: the same double sums in
// another order, ~1e-16 relative apart, far below float32's half ulp, with every per-element
// expression the NCHW loop's. Their float32 results are therefore the same bits, but for a double
// result within ~1e-16 of a float32 rounding boundary (about one value in 10^8; none here, the
// inputs being fixed); float64 ones agree to 1e-12. bfloat16 data are compared with the float32
// oracle as tests/ops/test_bf16_norm.cpp does (its tolerances).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/autograd/node.h"
#include "engine/nn/layers.h"
#include "engine/ops/norm/norm_cpu.h"
#include "engine/pneuma.h"
#include "tests/data/data_util.h"
#include "tests/kernels/kernel_check.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::gradcheck;
using pneuma::testing::random_input;
using pneuma::testing::require_close;
using pneuma::testing::require_same_bits;
using pneuma::testing::uniform_values;

namespace {

// A copy with channels-last strides, even where size-1 dims make the row-major ones channels-last
// too (torch.empty(memory_format=torch.channels_last).copy_(t)); differentiable.
Tensor channels_last(const Tensor& t) { return t.clone(MemoryFormat::ChannelsLast); }

void require_strides(const Tensor& t, MemoryFormat format, const char* what) {
  CAPTURE(what);
  CAPTURE(t.str());
  REQUIRE(t.strides() == strides_for(t.shape(), format, "test"));
}

struct NormCase {
  Shape shape;
  bool training, weight, bias, running;
};

// Several row blocks with a partial last one (the CPU loops take 16384 / C rows a block: 256 rows
// at 64 channels, 1024 at 16), odd channel counts, no affine parameters, [N, C, 1, 1] (row-major
// strides are channels-last too; torch's CPU output takes the row-major ones), evaluation.
const NormCase kCases[] = {
    {{4, 64, 12, 12}, true, true, true, true},  {{5, 16, 30, 30}, true, true, true, true},
    {{2, 7, 5, 3}, true, false, false, true},   {{3, 5, 4, 4}, true, true, false, false},
    {{6, 8, 1, 1}, true, true, true, true},     {{4, 64, 12, 12}, false, true, true, true},
    {{2, 7, 5, 3}, false, false, true, true},   {{6, 8, 1, 1}, false, true, false, true},
};

// What one batch_norm call gives: output, the node's own gradients (what the node returns for g, as
// laid out; a leaf's .grad takes the leaf's layout whatever the node returned), running statistics.
struct Result {
  Tensor y, dx, dw, db, running_mean, running_var;
};

// The parameters and running statistics are fixed uniform values rounded to param_dtype and held
// in `storage` (param_dtype unless given: the float32 oracle holds a bf16 op's values in float32).
Result run(const NormCase& c, const Tensor& x_values, const Tensor& g, DType param_dtype,
           std::optional<DType> storage = std::nullopt) {
  const int64_t C = c.shape[1];
  const auto values = [&](uint64_t seed, double lo, double hi) {
    return uniform_values({C}, seed, DType::Float32, lo, hi).to(param_dtype).to(storage.value_or(param_dtype));
  };
  const auto leaf = [&](uint64_t seed, double lo, double hi) { return values(seed, lo, hi).set_requires_grad(true); };
  const auto buffer = [&](uint64_t seed, double lo, double hi) { return c.running ? values(seed, lo, hi) : Tensor(); };
  Result r;
  const Tensor x = x_values.detach().set_requires_grad(true);
  const Tensor w = c.weight ? leaf(3, 0.5, 1.5) : Tensor();
  const Tensor b = c.bias ? leaf(4, -1, 1) : Tensor();
  r.running_mean = buffer(5, 3, 5);
  r.running_var = buffer(6, 0.5, 2);
  r.y = batch_norm(x, r.running_mean, r.running_var, w, b, c.training, 0.1, 1e-5);
  REQUIRE(r.y.grad_fn());
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = r.y.grad_fn()->apply(g);
  r.dx = grads[0];
  if (c.weight) r.dw = grads[1];
  if (c.bias) r.db = grads[2];
  return r;
}

// |actual - expected| <= relative * |expected| + fraction * max|expected| per element; expected is
// the float32 oracle, actual of `dtype`.
void require_near_oracle(const Tensor& expected, const Tensor& actual, DType dtype, double relative, double fraction,
                         const char* what) {
  REQUIRE(actual.defined());
  REQUIRE(actual.dtype() == dtype);
  REQUIRE(expected.dtype() == DType::Float32);
  pneuma::testing::require_near_scaled(expected, actual, relative, fraction, what);
}

// bfloat16 has 8 significant bits: one rounding moves a value by at most half an ulp, 2^-8 of it;
// two results rounded independently from nearby floats differ by at most one ulp, 2^-7 of it.
constexpr double kBf16HalfUlp = 0x1p-8;
constexpr double kBf16Ulp = 0x1p-7;

// float64 (the row loops) to double rounding; float32 (oneDNN against the NCHW loops) within
// `relative` of the value plus `absolute`.
void require_agree(const Tensor& expected, const Tensor& actual, double relative, double absolute, const char* what) {
  CAPTURE(what);
  REQUIRE(expected.defined() == actual.defined());
  if (!expected.defined()) return;
  REQUIRE(expected.dtype() == actual.dtype());
  if (expected.dtype() == DType::Float64) return require_close(expected, actual, what);
  pneuma::testing::check_close(actual, expected, relative, absolute);
}

}  // namespace

TEST_SUITE("channels_last") {

TEST_CASE("batch_norm channels last matches the NCHW path") {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    for (const NormCase& c : kCases) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.training);
      // A mean offset of 4 against a spread of about 1.3: the variance must not cancel.
      const Tensor x = uniform_values(c.shape, 1, dtype, 2, 6.5);
      const Tensor g = uniform_values(c.shape, 2, dtype, -1, 1);
      const Result nchw = run(c, x, g, dtype);
      const Tensor x_cl = channels_last(x);
      // The gradient arriving channels-last (from a channels-last consumer) and row-major.
      for (const bool g_channels_last : {true, false}) {
        CAPTURE(g_channels_last);
        const Result cl = run(c, x_cl, g_channels_last ? channels_last(g) : g, dtype);
        // torch: empty_like(input, suggest_memory_format_contig(input)) for the output, row-major
        // where the input is that too; empty_like(input, input.suggest_memory_format()) for dx.
        require_strides(cl.y, x_cl.is_contiguous() ? MemoryFormat::Contiguous : MemoryFormat::ChannelsLast, "output");
        require_strides(cl.dx, MemoryFormat::ChannelsLast, "input gradient");
        require_agree(nchw.y, cl.y, 1e-4, 1e-5, "output");
        require_agree(nchw.dx, cl.dx, 1e-3, 1e-4, "input gradient");
        require_agree(nchw.dw, cl.dw, 1e-3, 1e-3, "weight gradient");
        require_agree(nchw.db, cl.db, 1e-4, 1e-4, "bias gradient");
        require_agree(nchw.running_mean, cl.running_mean, 1e-5, 1e-6, "running_mean");
        require_agree(nchw.running_var, cl.running_var, 1e-5, 1e-6, "running_var");
      }
    }
  }
}

TEST_CASE("batch_norm channels last input that is not dense") {
  // Every other column of a channels-last tensor: strides still order it NHWC, so batch norm
  // runs channels-last on a dense copy, as torch does.
  const Tensor base = channels_last(uniform_values({3, 6, 5, 8}, 7, DType::Float32, -2, 3));
  const Tensor x = base.slice(3, 0, 8, 2);
  REQUIRE_FALSE(x.is_non_overlapping_and_dense());
  REQUIRE(x.suggest_memory_format() == MemoryFormat::ChannelsLast);
  const NormCase c{{3, 6, 5, 4}, true, true, true, true};
  const Tensor g = uniform_values(c.shape, 8, DType::Float32, -1, 1);
  const Result cl = run(c, x, g, DType::Float32);
  const Result nchw = run(c, x.contiguous(), g, DType::Float32);
  require_strides(cl.y, MemoryFormat::ChannelsLast, "output");
  require_strides(cl.dx, MemoryFormat::ChannelsLast, "input gradient");
  require_agree(nchw.y, cl.y, 1e-4, 1e-5, "output");
  require_agree(nchw.dx, cl.dx, 1e-3, 1e-4, "input gradient");
  require_agree(nchw.dw, cl.dw, 1e-3, 1e-3, "weight gradient");
  require_agree(nchw.running_var, cl.running_var, 1e-5, 1e-6, "running_var");
}

// The row loops on NHWC memory ([N * H * W, C, 1]) against the NCHW loops ([N, C, H * W]) on the
// same values: float32 bit for bit (see the top of the file).
TEST_CASE("batch_norm channels last row loops match the NCHW loops") {
  for (const NormCase& c : kCases) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.training);
    const int64_t N = c.shape[0], C = c.shape[1], S = c.shape[2] * c.shape[3];
    const Tensor x = uniform_values(c.shape, 13, DType::Float32, 2, 6.5), x_cl = channels_last(x);
    const Tensor g = uniform_values(c.shape, 14, DType::Float32, -1, 1), g_cl = channels_last(g);
    const Tensor w = c.weight ? uniform_values({C}, 15, DType::Float32, 0.5, 1.5) : Tensor();
    const Tensor b = c.bias ? uniform_values({C}, 16, DType::Float32, -1, 1) : Tensor();
    Tensor mean = uniform_values({C}, 17, DType::Float32, 3, 5), var = uniform_values({C}, 18, DType::Float32, 0.5, 2);
    Tensor mean_cl = mean.clone(), var_cl = var.clone();
    if (c.training) {
      cpu::batch_norm_stats(x, N, C, S, mean, var);
      cpu::batch_norm_stats(x_cl, N * S, C, 1, mean_cl, var_cl);
      require_same_bits(mean, mean_cl);
      require_same_bits(var, var_cl);
    }
    const Tensor y = Tensor::empty(c.shape), y_cl = Tensor::empty(c.shape, DType::Float32, Device::cpu(),
                                                                   MemoryFormat::ChannelsLast);
    cpu::batch_norm_apply(x, N, C, S, mean, var, w, b, 1e-5, y);
    cpu::batch_norm_apply(x_cl, N * S, C, 1, mean_cl, var_cl, w, b, 1e-5, y_cl);
    require_same_bits(y, y_cl);
    const Tensor dx = Tensor::empty(c.shape), dx_cl = Tensor::empty(c.shape, DType::Float32, Device::cpu(),
                                                                     MemoryFormat::ChannelsLast);
    const Tensor dw = Tensor::empty({C}), dw_cl = Tensor::empty({C}), db = Tensor::empty({C}), db_cl = Tensor::empty({C});
    cpu::batch_norm_backward(x, g, N, C, S, mean, var, w, 1e-5, c.training, dx, dw, db);
    cpu::batch_norm_backward(x_cl, g_cl, N * S, C, 1, mean_cl, var_cl, w, 1e-5, c.training, dx_cl, dw_cl, db_cl);
    require_same_bits(dx, dx_cl);
    require_same_bits(dw, dw_cl);
    require_same_bits(db, db_cl);
    // Only the bias gradient.
    const Tensor db_only = Tensor::empty({C});
    cpu::batch_norm_backward(Tensor(), g_cl, N * S, C, 1, Tensor(), Tensor(), Tensor(), 1e-5, c.training, Tensor(),
                             Tensor(), db_only);
    require_same_bits(db, db_only);
  }
}

TEST_CASE("batch_norm channels last through BatchNorm2d and into a leaf") {
  nn::BatchNorm2d bn(5);
  bn.to(MemoryFormat::ChannelsLast);  // 1-d parameters and buffers: nothing to convert
  const Tensor x = channels_last(uniform_values({2, 5, 4, 3}, 9, DType::Float32, -1, 2)).detach().set_requires_grad(true);
  bn.train();
  const Tensor y = bn.forward(x);
  require_strides(y, MemoryFormat::ChannelsLast, "training output");
  y.backward(channels_last(uniform_values({2, 5, 4, 3}, 10, DType::Float32, -1, 1)));
  require_strides(x.grad(), MemoryFormat::ChannelsLast, "leaf gradient");
  REQUIRE(bn.weight.grad().defined());
  bn.eval();
  require_strides(bn.forward(x), MemoryFormat::ChannelsLast, "evaluation output");
}

// bfloat16 data, channels-last, against the float32 oracle on the same (rounded) values in NCHW:
// float32 parameters (autocast) and bfloat16 ones. Tolerances of tests/ops/test_bf16_norm.cpp:
// bf16 results 2^-8 of the value (one rounding of a float result) plus 2e-3 of the largest
// magnitude (that float result's inputs carry float sum errors); float32 statistics 1e-5 and
// float32 parameter gradients 1e-4 (float sums of bf16 values against the oracle's double ones).
TEST_CASE("batch_norm channels last bfloat16 against the float32 oracle") {
  for (const DType params : {DType::Float32, DType::BFloat16}) {
    for (const NormCase& c : kCases) {
      const std::string param_dtype = dtype_name(params);
      CAPTURE(param_dtype);
      CAPTURE(shape_str(c.shape));
      CAPTURE(c.training);
      const Tensor x = uniform_values(c.shape, 11, DType::Float32, 2, 6.5).to(DType::BFloat16);
      const Tensor g = uniform_values(c.shape, 12, DType::Float32, -1, 1).to(DType::BFloat16);
      const Tensor x_cl = channels_last(x);
      const Result cl = run(c, x_cl, channels_last(g), params);
      REQUIRE(cl.y.dtype() == DType::BFloat16);
      require_strides(cl.y, x_cl.is_contiguous() ? MemoryFormat::Contiguous : MemoryFormat::ChannelsLast, "output");
      require_strides(cl.dx, MemoryFormat::ChannelsLast, "input gradient");
      // The float32 oracle: NCHW float32 data and parameters holding the op's values.
      const Result oracle = run(c, x.to(DType::Float32), g.to(DType::Float32), params, DType::Float32);
      require_near_oracle(oracle.y, cl.y, DType::BFloat16, kBf16HalfUlp, 2e-3, "output");
      require_near_oracle(oracle.dx, cl.dx, DType::BFloat16, kBf16HalfUlp, 2e-3, "input gradient");
      const bool bf16_params = params == DType::BFloat16;
      const auto check_param = [&](const Tensor& expected, const Tensor& actual, double tolerance, const char* what) {
        if (!expected.defined()) return;
        if (bf16_params) require_near_oracle(expected, actual, DType::BFloat16, kBf16HalfUlp, 2e-3, what);
        else require_near_oracle(expected, actual, DType::Float32, tolerance, tolerance, what);
      };
      check_param(oracle.dw, cl.dw, 1e-4, "weight gradient");
      check_param(oracle.db, cl.db, 1e-4, "bias gradient");
      check_param(oracle.running_mean, cl.running_mean, 1e-5, "running_mean");
      check_param(oracle.running_var, cl.running_var, 1e-5, "running_var");
    }
  }
}

}  // TEST_SUITE

TEST_SUITE("gradcheck") {
  TEST_CASE("gradcheck batch_norm channels last") {
    // f sees the leaf through a channels-last copy; the checks inside f confirm batch norm ran
    // and answered channels-last.
    const auto checked = [](const Tensor& y) {
      require_strides(y, MemoryFormat::ChannelsLast, "output");
      return y;
    };
    SUBCASE("training, affine, running stats updated alongside") {
      Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
      gradcheck([&](const auto& x) { return checked(batch_norm(channels_last(x[0]), rm, rv, x[1], x[2], true)); },
                {random_input({3, 3, 4, 2}, 1, -2, 3), random_input({3}, 2, 0.5, 1.5), random_input({3}, 3)});
    }
    SUBCASE("training, no affine, odd sizes") {
      gradcheck([&](const auto& x) { return checked(batch_norm(channels_last(x[0]), Tensor(), Tensor(), Tensor(), Tensor(), true)); },
                {random_input({2, 5, 3, 3}, 4)});
    }
    SUBCASE("eval, affine") {
      const Tensor rm = random_input({4}, 5, -1, 1, false), rv = random_input({4}, 6, 0.5, 2, false);
      gradcheck([&](const auto& x) { return checked(batch_norm(channels_last(x[0]), rm, rv, x[1], x[2], false, 0.1, 1e-4)); },
                {random_input({2, 4, 3, 2}, 7), random_input({4}, 8, 0.5, 1.5), random_input({4}, 9)});
    }
    SUBCASE("two batch norms: the inner one's gradient arrives channels-last") {
      gradcheck([&](const auto& x) {
        const Tensor inner = batch_norm(channels_last(x[0]), Tensor(), Tensor(), x[1], Tensor(), true);
        return checked(batch_norm(mul(inner, inner), Tensor(), Tensor(), Tensor(), x[2], true));
      }, {random_input({2, 3, 3, 3}, 10), random_input({3}, 11, 0.5, 1.5), random_input({3}, 12)});
    }
  }
}

TEST_SUITE("parity") {
  // torch 1.13 on channels-last input: values and the strides of the output and of batch norm's own
  // input gradient. float32 within 1e-5 of the value plus 1e-5 of the largest magnitude (float and
  // double sums in other orders); bfloat16 results, each side rounding its own float result once,
  // within one bf16 ulp (2^-7 of the value) plus 1e-3 of the largest magnitude (the float results'
  // sum errors, as "parity batch_norm bfloat16 against torch").
  TEST_CASE("parity batch_norm channels last against torch") {
    struct TorchCase {
      Shape shape;
      DType dtype, params;
      bool training;
    };
    const TorchCase cases[] = {{{2, 6, 5, 4}, DType::Float32, DType::Float32, true},
                               {{2, 6, 5, 4}, DType::Float32, DType::Float32, false},
                               {{3, 8, 1, 1}, DType::Float32, DType::Float32, true},
                               {{4, 1, 3, 5}, DType::Float32, DType::Float32, true},
                               {{2, 6, 5, 4}, DType::BFloat16, DType::Float32, true},
                               {{2, 6, 5, 4}, DType::BFloat16, DType::Float32, false}};
    const auto to_json = [](const Tensor& t) { return nlohmann::json{{"shape", t.shape()}, {"values", t.to_vector()}}; };
    std::vector<Result> runs;
    nlohmann::json request = nlohmann::json::array();
    for (const TorchCase& c : cases) {
      const int64_t C = c.shape[1];
      // Values exact in bfloat16, so both sides start from the same numbers.
      const auto values = [](const Shape& shape, uint64_t seed, double lo, double hi) {
        return uniform_values(shape, seed, DType::Float32, lo, hi).to(DType::BFloat16).to(DType::Float32);
      };
      const Tensor x = values(c.shape, 21, 1, 4), g = values(c.shape, 22, -1, 1);
      const Tensor w = values({C}, 23, 0.5, 1.5), b = values({C}, 24, -1, 1);
      const Tensor rm = values({C}, 25, 1, 3), rv = values({C}, 26, 0.5, 2);
      Result r;
      const Tensor leaf = channels_last(x.to(c.dtype)).detach().set_requires_grad(true);
      // Copies: to() of the same dtype is the tensor itself, and the request sends the values before the update.
      const Tensor weight = w.to(c.params).clone().set_requires_grad(true);
      const Tensor bias = b.to(c.params).clone().set_requires_grad(true);
      r.running_mean = rm.to(c.params).clone();
      r.running_var = rv.to(c.params).clone();
      r.y = batch_norm(leaf, r.running_mean, r.running_var, weight, bias, c.training, 0.1, 1e-5);
      {
        NoGradGuard no_grad;
        const std::vector<Tensor> grads = r.y.grad_fn()->apply(g.to(c.dtype));
        r.dx = grads[0];
        r.dw = grads[1];
        r.db = grads[2];
      }
      runs.push_back(r);
      request.push_back({{"x", to_json(x)}, {"grad", to_json(g)}, {"weight", to_json(w)}, {"bias", to_json(b)},
                         {"running_mean", to_json(rm)}, {"running_var", to_json(rv)},
                         {"dtype", dtype_name(c.dtype)}, {"params", dtype_name(c.params)},
                         {"training", c.training}});
    }
    testing::TempDir dir("norm-channels-last-torch");
    testing::write_text(dir / "cases.json", request.dump());
    std::string text;
    const std::string command =
        "/usr/bin/python3 " PNEUMA_SOURCE_DIR "/tests/ops/norm_channels_last_torch.py " + (dir / "cases.json");
    REQUIRE_MESSAGE(testing::run_command(command, &text) == 0, command, " failed: ", text);
    const nlohmann::json torch = nlohmann::json::parse(text);
    REQUIRE(torch.size() == runs.size());
    for (size_t k = 0; k < runs.size(); ++k) {
      CAPTURE(k);
      const Result& r = runs[k];
      CHECK(r.y.strides() == torch[k].at("output_strides").get<Strides>());
      CHECK(r.dx.strides() == torch[k].at("grad_input_strides").get<Strides>());
      const auto check = [&](const char* key, const Tensor& ours) {
        const Tensor theirs =
            Tensor::from_vector(torch[k].at(key).get<std::vector<double>>(), ours.shape(), DType::Float32);
        if (ours.dtype() == DType::BFloat16) require_near_oracle(theirs, ours, DType::BFloat16, kBf16Ulp, 1e-3, key);
        else require_near_oracle(theirs, ours, DType::Float32, 1e-5, 1e-5, key);
      };
      check("output", r.y);
      check("grad_input", r.dx);
      check("grad_weight", r.dw);
      if (r.y.dtype() == DType::BFloat16) {
        // torch 1.13's channels-last backward of bf16 data with float32 parameters rounds the bias
        // gradient to bfloat16 (its NCHW path and this op keep the float sum, which is exact here):
        // within half a bf16 ulp, 2^-8 of the value.
        const Tensor theirs =
            Tensor::from_vector(torch[k].at("grad_bias").get<std::vector<double>>(), r.db.shape(), DType::Float32);
        require_near_oracle(theirs, r.db, DType::Float32, kBf16HalfUlp, 1e-5, "grad_bias");
      } else {
        check("grad_bias", r.db);
      }
      check("running_mean", r.running_mean);
      check("running_var", r.running_var);
    }
  }
}
