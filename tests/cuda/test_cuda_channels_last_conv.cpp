// Channels-last convolutions on CUDA (cuDNN's NHWC kernels). The host side needs no GPU: the NHWC
// descriptor specs, problem keys and, with the CUDA backend built, the cuDNN descriptors set from
// them. The `parity cuda ... channels last` tests run conv2d / conv_transpose2d on channels-last
// CUDA tensors against the CPU, float32 and bfloat16, forward and backward, with the layouts
// asserted; they are skipped without a GPU.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <vector>

#include "engine/autograd/node.h"
#include "engine/cuda/conv_plan.h"
#include "engine/pneuma.h"
#include "tests/cuda/cuda_parity.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/context.h"
#include "engine/cuda/cudnn_descriptors.h"
#endif

using namespace pneuma;
using pneuma::testing::bf16_exact_input;
using pneuma::testing::check_cuda_parity;
using pneuma::testing::kBf16ParityTolerance;
using pneuma::testing::parity_input;
using pneuma::testing::to_bf16;
using pneuma::testing::to_f32;

namespace {

constexpr MemoryFormat kChannelsLast = MemoryFormat::ChannelsLast;

// A ResNet 3x3 stride-2 conv with odd sizes: [2, 6, 9, 7] -> [2, 10, 5, 4].
ops::ConvGeometry geometry(MemoryFormat format) {
  ops::ConvGeometry g;
  g.batch = 2;
  g.in_channels = 6;
  g.in_h = 9;
  g.in_w = 7;
  g.out_channels = 10;
  g.out_h = 5;
  g.out_w = 4;
  g.kernel_h = g.kernel_w = 3;
  g.stride = {2, 2};
  g.padding = {1, 1};
  g.groups = 2;
  g.memory_format = format;
  return g;
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("conv plan channels last: NHWC descriptor specs and keys") {
  const ops::ConvGeometry nchw = geometry(MemoryFormat::Contiguous), nhwc = geometry(kChannelsLast);
  const cuda::ConvDescriptorSpec spec = cuda::conv_descriptor_spec(nhwc, DType::BFloat16, false);
  CHECK(spec.layout == cuda::ConvLayout::NHWC);
  // Dims stay [N, C, H, W]; the strides are channels-last ([H*W*C, 1, W*C, C]).
  CHECK(spec.x_dims == std::array<int, 4>{2, 6, 9, 7});
  CHECK(spec.x_strides == std::array<int, 4>{378, 1, 42, 6});
  CHECK(spec.y_dims == std::array<int, 4>{2, 10, 5, 4});
  CHECK(spec.y_strides == std::array<int, 4>{200, 1, 40, 10});
  CHECK(spec.w_dims == std::array<int, 4>{10, 3, 3, 3});
  CHECK(cuda::conv_descriptor_spec(nchw, DType::BFloat16, false).layout == cuda::ConvLayout::NCHW);
  CHECK(cuda::conv_descriptor_spec(nchw, DType::BFloat16, false).x_strides == std::array<int, 4>{378, 63, 7, 1});
  CHECK(cuda::dense_strides({2, 3, 4, 5}, cuda::ConvLayout::NHWC) == std::array<int, 4>{60, 1, 15, 3});
  // The layout splits the algorithm cache: an NHWC problem never reuses an NCHW choice.
  for (const cuda::ConvPass pass : {cuda::ConvPass::Forward, cuda::ConvPass::BackwardData, cuda::ConvPass::BackwardFilter})
    CHECK(cuda::conv_key(pass, nhwc, DType::BFloat16, false) != cuda::conv_key(pass, nchw, DType::BFloat16, false));
  CHECK(cuda::conv_key(cuda::ConvPass::Forward, nhwc, DType::Float32, false).layout == cuda::ConvLayout::NHWC);
  CHECK(cuda::conv_key_str(cuda::conv_key(cuda::ConvPass::Forward, nhwc, DType::BFloat16, false)) ==
        "conv2d forward bfloat16 NHWC x[2, 6, 9, 7] w[10, 3, 3, 3] padding (1, 1) stride (2, 2) dilation (1, 1) "
        "groups 2");
  CHECK_THROWS_WITH_AS(cuda::conv_layout(MemoryFormat::Preserve), doctest::Contains("preserve_format"), Error);
}

#ifdef PNEUMA_WITH_CUDA
TEST_CASE("conv plan channels last: cuDNN NHWC descriptors") {
  for (const DType dtype : {DType::Float32, DType::BFloat16}) {
    CAPTURE(dtype_name(dtype));
    const ops::ConvGeometry g = geometry(kChannelsLast);
    const cuda::ConvDescriptorSpec spec = cuda::conv_descriptor_spec(g, dtype, false);
    const cuda::ConvDescriptors d(spec, dtype);
    // The filter is OHWI: cuDNN's NHWC filter format, dims still given as [K, C, H, W].
    cudnnDataType_t data{};
    cudnnTensorFormat_t format{};
    int k = 0, c = 0, h = 0, w = 0;
    REQUIRE(cudnnGetFilter4dDescriptor(d.w.get(), &data, &format, &k, &c, &h, &w) == CUDNN_STATUS_SUCCESS);
    CHECK(format == CUDNN_TENSOR_NHWC);
    CHECK(std::array<int, 4>{k, c, h, w} == spec.w_dims);
    // The activations carry the channels-last strides.
    std::array<int, 4> dims{}, strides{};
    int nb_dims = 0;
    REQUIRE(cudnnGetTensorNdDescriptor(d.x.get(), 4, &data, &nb_dims, dims.data(), strides.data()) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(nb_dims == 4);
    CHECK(dims == spec.x_dims);
    CHECK(strides == spec.x_strides);
    REQUIRE(cudnnGetTensorNdDescriptor(d.y.get(), 4, &data, &nb_dims, dims.data(), strides.data()) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(strides == spec.y_strides);
    // cuDNN's output-size formula agrees with the geometry.
    int n = 0, oc = 0, oh = 0, ow = 0;
    REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv.get(), d.x.get(), d.w.get(), &n, &oc, &oh, &ow) ==
            CUDNN_STATUS_SUCCESS);
    CHECK(std::array<int, 4>{n, oc, oh, ow} == spec.y_dims);
  }
}
#endif

TEST_CASE("parity cuda conv2d channels last float32") {
  PNEUMA_REQUIRE_GPU();
  struct Case {
    const char* what;
    Shape x, w;
    std::array<int64_t, 2> stride, padding, dilation;
    int64_t groups;
    bool input_cl, weight_cl;
  };
  const Case cases[] = {
      {"stem 7x7 stride 2, channels-last weight only", {2, 3, 32, 32}, {8, 3, 7, 7}, {2, 2}, {3, 3}, {1, 1}, 1, false,
       true},
      {"3x3 stride 1", {2, 16, 14, 14}, {16, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true, true},
      {"3x3 stride 2, channels-last input only", {2, 16, 14, 14}, {32, 16, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, true,
       false},
      {"1x1 stride 2 downsample", {2, 16, 14, 14}, {32, 16, 1, 1}, {2, 2}, {0, 0}, {1, 1}, 1, true, true},
      {"groups 2, dilation, odd sizes", {3, 4, 11, 8}, {6, 2, 3, 2}, {2, 1}, {2, 1}, {2, 1}, 2, true, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    check_cuda_parity(
        [&](const auto& t) {
          const Tensor x = c.input_cl ? t[0].contiguous(kChannelsLast) : t[0];
          const Tensor w = c.weight_cl ? t[1].contiguous(kChannelsLast) : t[1];
          const Tensor y = conv2d(x, w, t[2], c.stride, c.padding, c.dilation, c.groups);
          CHECK(y.is_contiguous(kChannelsLast));
          return y;
        },
        {parity_input(c.x, 1, DType::Float32), parity_input(c.w, 2, DType::Float32),
         parity_input({c.w[0]}, 3, DType::Float32)},
        1e-4);
  }
}

TEST_CASE("parity cuda conv2d channels last bfloat16") {
  PNEUMA_REQUIRE_GPU();
  // issue 9's GPU row runs ResNet-50 in bfloat16 channels-last: its stem, 3x3, strided and 1x1 convs.
  struct Case {
    Shape x, w;
    std::array<int64_t, 2> stride, padding;
  };
  const Case cases[] = {
      {{2, 3, 32, 32}, {8, 3, 7, 7}, {2, 2}, {3, 3}},
      {{2, 16, 14, 14}, {16, 16, 3, 3}, {1, 1}, {1, 1}},
      {{2, 16, 14, 14}, {32, 16, 3, 3}, {2, 2}, {1, 1}},
      {{2, 16, 14, 14}, {64, 16, 1, 1}, {1, 1}, {0, 0}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.w[2]);
    CAPTURE(c.stride[0]);
    check_cuda_parity(
        [&](const auto& t) {
          const Tensor y = conv2d(to_bf16(t[0]).contiguous(kChannelsLast), to_bf16(t[1]).contiguous(kChannelsLast),
                                  to_bf16(t[2]), c.stride, c.padding);
          CHECK(y.dtype() == DType::BFloat16);
          CHECK(y.is_contiguous(kChannelsLast));
          return to_f32(y);
        },
        {bf16_exact_input(c.x, 11), bf16_exact_input(c.w, 12), bf16_exact_input({c.w[0]}, 13)}, kBf16ParityTolerance);
  }
}

TEST_CASE("parity cuda conv_transpose2d channels last") {
  PNEUMA_REQUIRE_GPU();
  check_cuda_parity(
      [](const auto& t) {
        const Tensor y = conv_transpose2d(t[0].contiguous(kChannelsLast), t[1], t[2], {2, 2}, {1, 1}, {1, 1});
        CHECK(y.is_contiguous(kChannelsLast));
        return y;
      },
      {parity_input({2, 8, 5, 5}, 21, DType::Float32), parity_input({8, 6, 3, 3}, 22, DType::Float32),
       parity_input({6}, 23, DType::Float32)},
      1e-4);
  check_cuda_parity(
      [](const auto& t) {
        const Tensor y = conv_transpose2d(to_bf16(t[0]).contiguous(kChannelsLast), to_bf16(t[1]), to_bf16(t[2]),
                                          {2, 2}, {1, 1}, {1, 1}, 2);
        CHECK(y.is_contiguous(kChannelsLast));
        return to_f32(y);
      },
      {bf16_exact_input({2, 8, 7, 7}, 24), bf16_exact_input({8, 4, 3, 3}, 25), bf16_exact_input({8}, 26)},
      kBf16ParityTolerance);
}

TEST_CASE("parity cuda conv2d channels last layouts") {
  PNEUMA_REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::BFloat16}) {
    CAPTURE(dtype_name(dtype));
    Tensor x = parity_input({2, 4, 5, 6}, 31, DType::Float32).to(dtype).contiguous(kChannelsLast).to(Device::cuda());
    Tensor w = parity_input({6, 4, 3, 3}, 32, DType::Float32).to(dtype).to(Device::cuda());
    Tensor b = parity_input({6}, 33, DType::Float32).to(dtype).to(Device::cuda());
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    const Tensor y = conv2d(x, w, b, {1, 1}, {1, 1});
    CHECK(y.strides() == Strides{180, 1, 36, 6});  // torch 1.13's cuDNN output
    const Tensor gy = parity_input(y.shape(), 34, DType::Float32).to(dtype).to(Device::cuda());
    // The conv's backward returns channels-last gradients of the input and of the weight it ran with.
    const std::vector<Tensor> grads = y.grad_fn()->apply(gy);
    CHECK(grads[0].is_contiguous(kChannelsLast));
    CHECK(grads[1].is_contiguous(kChannelsLast));
    CHECK(grads[2].dim() == 1);
    // Each leaf's gradient takes its leaf's layout.
    y.backward(gy);
    CHECK(x.grad().strides() == x.strides());
    CHECK(w.grad().strides() == w.strides());
  }
  // float64 stays NCHW on cuDNN, as torch's cudnn_conv_suggest_memory_format.
  const Tensor x64 = parity_input({2, 4, 5, 6}, 35, DType::Float64).contiguous(kChannelsLast).to(Device::cuda());
  const Tensor w64 = parity_input({6, 4, 3, 3}, 36, DType::Float64).to(Device::cuda());
  const Tensor y64 = conv2d(x64, w64);
  CHECK(y64.is_contiguous());
  CHECK_FALSE(y64.is_contiguous(kChannelsLast));
  testing::require_close_to(conv2d(x64.to(Device::cpu()).contiguous(), w64.to(Device::cpu())), y64.to(Device::cpu()),
                            1e-10, "float64 output");
}

TEST_CASE("parity cuda conv2d channels last: NCHW and NHWC problems are searched apart") {
  PNEUMA_REQUIRE_GPU();
#ifdef PNEUMA_WITH_CUDA  // the device context exists only there
  cuda::ConvAlgorithmCache& cache = cuda::DeviceContext::get(0).conv_algorithms();
  cache.clear();
  const Tensor x = parity_input({2, 8, 8, 8}, 41, DType::Float32).to(Device::cuda());
  const Tensor w = parity_input({8, 8, 3, 3}, 42, DType::Float32).to(Device::cuda());
  conv2d(x, w);
  CHECK(cache.size() == 1);
  conv2d(x.contiguous(kChannelsLast), w);
  CHECK(cache.size() == 2);
  conv2d(x, w.contiguous(kChannelsLast));  // the same NHWC problem
  CHECK(cache.size() == 2);
#endif
}

}  // TEST_SUITE
