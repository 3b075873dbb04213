// bfloat16 convolutions (cuDNN) and pooling (our kernels) on CUDA tensors against the same ops on
// CPU bfloat16 tensors, forward and backward; plus the host side of the cuDNN bf16 setup (descriptor
// data types, compute type, math type, plan keys), which needs no GPU.
//
// Tolerance of the GPU tests: both sides compute in float32 and round once to bfloat16, adding in
// different orders (cuDNN's tensor-core tiles, oneDNN's blocks), so a value whose float sum lies
// near a rounding boundary may land one bf16 ulp apart: two ulps (2^-7 relative) plus 1e-3 of the
// tensor's largest magnitude for sums that cancel to near zero.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/cuda/conv_plan.h"
#include "engine/pneuma.h"
#include "tests/cuda/cuda_parity.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/cudnn_descriptors.h"
#endif

using namespace pneuma;
using pneuma::testing::parity_input;

namespace {

void require_bf16_parity(const Tensor& expected, const Tensor& actual, const std::string& what) {
  CAPTURE(what);
  REQUIRE(actual.defined());
  REQUIRE(expected.dtype() == DType::BFloat16);
  REQUIRE(actual.dtype() == DType::BFloat16);
  REQUIRE(actual.shape() == expected.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to(Device::cpu()).to_vector();
  double largest = 0;
  for (double v : e) largest = std::max(largest, std::fabs(v));
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::fabs(a[i] - e[i]) <= std::fabs(e[i]) / 128 + 1e-3 * largest) continue;
    CAPTURE(i);
    CAPTURE(e[i]);
    CAPTURE(a[i]);
    FAIL("CUDA bfloat16 result outside the tolerance of the CPU bfloat16 result");
  }
}

using Op = std::function<Tensor(const std::vector<Tensor>&)>;

// op on bf16 CPU tensors and on their CUDA copies; outputs and input gradients compared.
void check_bf16_cuda_parity(const Op& op, const std::vector<Tensor>& inputs, uint64_t gradient_seed) {
  std::vector<Tensor> cpu_inputs, cuda_inputs;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      cpu_inputs.push_back(t);
      cuda_inputs.push_back(t);
      continue;
    }
    Tensor c = t.to(DType::BFloat16).detach(), g = c.to(Device::cuda()).detach();
    c.set_requires_grad(true);
    g.set_requires_grad(true);
    cpu_inputs.push_back(c);
    cuda_inputs.push_back(g);
  }
  const Tensor expected = op(cpu_inputs), actual = op(cuda_inputs);
  REQUIRE(actual.device() == Device::cuda());
  require_bf16_parity(expected, actual, "output");
  const Tensor gy = parity_input(expected.shape(), gradient_seed, DType::Float32).to(DType::BFloat16);
  expected.backward(gy);
  actual.backward(gy.to(Device::cuda()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    CAPTURE(i);
    require_bf16_parity(cpu_inputs[i].grad(), cuda_inputs[i].grad(), "gradient");
  }
}

ops::ConvGeometry resnet_stem() {
  ops::ConvGeometry g;
  g.batch = 2, g.in_channels = 3, g.in_h = 32, g.in_w = 32;
  g.out_channels = 8, g.kernel_h = 7, g.kernel_w = 7, g.out_h = 16, g.out_w = 16;
  g.stride = {2, 2}, g.padding = {3, 3};
  return g;
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("conv plan: bfloat16 data computes in float32 with tensor cores") {
  const ops::ConvGeometry g = resnet_stem();
  for (const bool tf32 : {false, true}) {
    const cuda::ConvDescriptorSpec spec = cuda::conv_descriptor_spec(g, DType::BFloat16, tf32);
    CHECK(spec.compute_dtype == DType::Float32);
    CHECK(spec.allow_tensor_cores);  // regardless of the TF32 switch, which is about float32
  }
  CHECK(cuda::conv_descriptor_spec(g, DType::Float32, false).compute_dtype == DType::Float32);
  CHECK(cuda::conv_descriptor_spec(g, DType::Float64, false).compute_dtype == DType::Float64);
  // Plans are cached per dtype: a bf16 problem never reuses a float32 algorithm choice.
  const cuda::ConvKey bf16 = cuda::conv_key(cuda::ConvPass::Forward, g, DType::BFloat16, true);
  const cuda::ConvKey f32 = cuda::conv_key(cuda::ConvPass::Forward, g, DType::Float32, true);
  CHECK(bf16 != f32);
  CHECK_FALSE(bf16.tf32);
  CHECK(cuda::conv_key_str(bf16).find("bfloat16") != std::string::npos);
  CHECK_THROWS_WITH_AS(cuda::conv_descriptor_spec(g, DType::Int64, false), doctest::Contains("int64"), Error);
}

#ifdef PNEUMA_WITH_CUDA
TEST_CASE("conv plan: cuDNN bfloat16 descriptors") {
  const ops::ConvGeometry g = resnet_stem();
  const cuda::ConvDescriptors d(cuda::conv_descriptor_spec(g, DType::BFloat16, false), DType::BFloat16);
  int pad_h = 0, pad_w = 0, u = 0, v = 0, dil_h = 0, dil_w = 0;
  cudnnConvolutionMode_t mode{};
  cudnnDataType_t compute{};
  REQUIRE(cudnnGetConvolution2dDescriptor(d.conv.get(), &pad_h, &pad_w, &u, &v, &dil_h, &dil_w, &mode, &compute) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(compute == CUDNN_DATA_FLOAT);
  CHECK(mode == CUDNN_CROSS_CORRELATION);
  cudnnMathType_t math{};
  REQUIRE(cudnnGetConvolutionMathType(d.conv.get(), &math) == CUDNN_STATUS_SUCCESS);
  CHECK(math == CUDNN_TENSOR_OP_MATH);
  cudnnDataType_t data{};
  cudnnTensorFormat_t format{};
  int k = 0, c = 0, h = 0, w = 0;
  REQUIRE(cudnnGetFilter4dDescriptor(d.w.get(), &data, &format, &k, &c, &h, &w) == CUDNN_STATUS_SUCCESS);
  CHECK(data == CUDNN_DATA_BFLOAT16);
  int n = 0, oc = 0, oh = 0, ow = 0;
  REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv.get(), d.x.get(), d.w.get(), &n, &oc, &oh, &ow) ==
          CUDNN_STATUS_SUCCESS);
  CHECK(std::array<int, 4>{n, oc, oh, ow} == std::array<int, 4>{2, 8, 16, 16});
}
#endif

TEST_CASE("parity cuda conv2d bfloat16") {
  PNEUMA_REQUIRE_GPU();
  struct Case {
    Shape x, w;
    std::array<int64_t, 2> stride, padding;
    int64_t groups;
    bool bias;
  };
  const Case cases[] = {
      {{2, 3, 32, 32}, {8, 3, 7, 7}, {2, 2}, {3, 3}, 1, false},    // ResNet stem
      {{2, 16, 14, 14}, {16, 16, 3, 3}, {1, 1}, {1, 1}, 1, false}, // 3x3 s1
      {{2, 16, 14, 14}, {32, 16, 3, 3}, {2, 2}, {1, 1}, 1, false}, // 3x3 s2
      {{2, 16, 14, 14}, {32, 16, 1, 1}, {2, 2}, {0, 0}, 1, false}, // 1x1 s2 downsample
      {{2, 8, 9, 9}, {8, 4, 3, 3}, {1, 1}, {1, 1}, 2, true},       // groups, bias
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    CAPTURE(c.w[2]);
    CAPTURE(c.stride[0]);
    const Tensor x = parity_input(c.x, ++seed, DType::Float32), w = parity_input(c.w, ++seed, DType::Float32);
    const Tensor b = c.bias ? parity_input({c.w[0]}, ++seed, DType::Float32) : Tensor();
    check_bf16_cuda_parity(
        [&](const std::vector<Tensor>& t) { return conv2d(t[0], t[1], t[2], c.stride, c.padding, {1, 1}, c.groups); },
        {x, w, b}, ++seed);
  }
}

TEST_CASE("parity cuda conv_transpose2d bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = parity_input({2, 8, 7, 7}, 111, DType::Float32), w = parity_input({8, 4, 3, 3}, 112, DType::Float32);
  const Tensor b = parity_input({8}, 113, DType::Float32);
  check_bf16_cuda_parity(
      [](const std::vector<Tensor>& t) { return conv_transpose2d(t[0], t[1], t[2], {2, 2}, {1, 1}, {1, 1}, 2); },
      {x, w, b}, 114);
}

TEST_CASE("parity cuda pooling bfloat16") {
  PNEUMA_REQUIRE_GPU();
  const Tensor x = parity_input({2, 8, 16, 16}, 121, DType::Float32);
  check_bf16_cuda_parity([](const std::vector<Tensor>& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x},
                         122);
  check_bf16_cuda_parity([](const std::vector<Tensor>& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}); }, {x},
                         123);
  check_bf16_cuda_parity([](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], {1, 1}); }, {x}, 124);
}

}  // TEST_SUITE
