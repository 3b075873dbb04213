// Batch norm on channels-last CUDA tensors (the row kernels, coalesced along C) against the CPU on
// the same channels-last data: float32 and bfloat16 (float32 parameters, as under autocast, and
// bfloat16 ones), training and evaluation, forward, backward and running statistics, and the
// layouts (output and input gradient channels-last, as torch's cuDNN and native CUDA batch norm).
// Skipped without a GPU.
//
// Both devices sum in the accumulate type in other orders: float32 results within
// parity_tolerance (double sums rounded to float32); bf16 results, each device rounding its own
// float result once, within one bf16 ulp (2^-7 of the value) plus 1e-3 of the tensor's largest
// magnitude; float32 results of bf16 data (float sums) within 1e-4.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/autograd/node.h"
#include "tests/cuda/cuda_parity.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::parity_input;
using pneuma::testing::parity_tolerance;
using pneuma::testing::require_close_to;

namespace {

void require_channels_last(const Tensor& t, const char* what) {
  CAPTURE(what);
  CAPTURE(t.str());
  REQUIRE(t.strides() == strides_for(t.shape(), MemoryFormat::ChannelsLast, "test"));
}

// bf16_data: the tensors are results of bfloat16 data (float sums), whatever their own dtype.
void require_agree(const Tensor& expected, const Tensor& actual, bool bf16_data, const char* what) {
  const std::string checked = what;
  CAPTURE(checked);
  REQUIRE(actual.defined());
  REQUIRE(actual.device() == Device::cpu());
  REQUIRE(actual.dtype() == expected.dtype());
  REQUIRE(actual.shape() == expected.shape());
  if (!bf16_data) {
    require_close_to(expected, actual, parity_tolerance(DType::Float32), what);
    return;
  }
  const bool bf16 = expected.dtype() == DType::BFloat16;
  pneuma::testing::require_near_scaled(expected, actual, bf16 ? 0x1p-7 : 1e-4, bf16 ? 1e-3 : 1e-4, what);
}

struct Run {
  Tensor y, dx, dw, db, running_mean, running_var;
};

// batch_norm on `device` with channels-last x; the node's own gradients for channels-last g.
Run run(Device device, const Tensor& x, const Tensor& g, const Tensor& weight, const Tensor& bias,
        const Tensor& running_mean, const Tensor& running_var, bool training) {
  Run r;
  const Tensor leaf = x.to(device).detach().set_requires_grad(true);
  const Tensor w = weight.to(device).detach().set_requires_grad(true);
  const Tensor b = bias.to(device).detach().set_requires_grad(true);
  r.running_mean = running_mean.to(device).detach().clone();
  r.running_var = running_var.to(device).detach().clone();
  r.y = batch_norm(leaf, r.running_mean, r.running_var, w, b, training, 0.1, 1e-5);
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = r.y.grad_fn()->apply(g.to(device));
  r.dx = grads[0];
  r.dw = grads[1];
  r.db = grads[2];
  return r;
}

void check_parity(const Shape& shape, DType data, DType params, bool training) {
  CAPTURE(shape_str(shape));
  CAPTURE(training);
  const std::string data_dtype = dtype_name(data), param_dtype = dtype_name(params);
  CAPTURE(data_dtype);
  CAPTURE(param_dtype);
  const int64_t C = shape[1];
  const auto channels_last = [](const Tensor& t) { return t.clone(MemoryFormat::ChannelsLast); };
  const Tensor x = channels_last(parity_input(shape, 3, DType::Float32, 2, 4).to(data));
  const Tensor g = channels_last(parity_input(shape, 6, DType::Float32).to(data));
  const Tensor weight = parity_input({C}, 4, DType::Float32, 0.5, 1.5).to(params);
  const Tensor bias = parity_input({C}, 5, DType::Float32).to(params);
  const Tensor running_mean = parity_input({C}, 1, DType::Float32, 2, 4).to(params);
  const Tensor running_var = parity_input({C}, 2, DType::Float32, 0.5, 2).to(params);
  const Run cpu = run(Device::cpu(), x, g, weight, bias, running_mean, running_var, training);
  const Run gpu = run(Device::cuda(), x, g, weight, bias, running_mean, running_var, training);
  REQUIRE(gpu.y.device() == Device::cuda());
  require_channels_last(gpu.y, "output");
  require_channels_last(gpu.dx, "input gradient");
  const bool bf16 = data == DType::BFloat16;
  require_agree(cpu.y, gpu.y.to(Device::cpu()), bf16, "output");
  require_agree(cpu.dx, gpu.dx.to(Device::cpu()), bf16, "input gradient");
  require_agree(cpu.dw, gpu.dw.to(Device::cpu()), bf16, "weight gradient");
  require_agree(cpu.db, gpu.db.to(Device::cpu()), bf16, "bias gradient");
  require_agree(cpu.running_mean, gpu.running_mean.to(Device::cpu()), bf16, "running_mean");
  require_agree(cpu.running_var, gpu.running_var.to(Device::cpu()), bf16, "running_var");
}

// A ResNet-like layer with several splits of rows and channel tiles, and odd sizes.
const Shape kShapes[] = {{8, 64, 14, 14}, {3, 7, 5, 9}};

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("parity cuda batch_norm channels last float32") {
  PNEUMA_REQUIRE_GPU();
  for (const Shape& shape : kShapes)
    for (const bool training : {true, false}) check_parity(shape, DType::Float32, DType::Float32, training);
}

TEST_CASE("parity cuda batch_norm channels last bfloat16") {
  PNEUMA_REQUIRE_GPU();
  for (const DType params : {DType::Float32, DType::BFloat16})
    for (const Shape& shape : kShapes)
      for (const bool training : {true, false}) check_parity(shape, DType::BFloat16, params, training);
}

}  // TEST_SUITE
