// Host logic of the cuDNN convolutions (engine/cuda/conv_plan.h): descriptor shapes, problem keys,
// algorithm choice under a workspace cap and the per-device algorithm cache. No GPU needed; with
// the CUDA backend built, real cuDNN descriptors are also set from the specs (cuDNN's descriptor
// calls are host code) and cuDNN's own output-size formula must agree with the geometry.
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/cuda/conv_plan.h"
#include "engine/pneuma.h"

#ifdef PNEUMA_WITH_CUDA
#include "engine/cuda/cudnn_descriptors.h"
#endif

using namespace pneuma;
using cuda::AlgorithmCandidate;
using cuda::ConvKey;
using cuda::ConvPass;

namespace {

// The geometry conv2d computes for these arguments (engine/ops/conv/conv.cpp's formulas).
ops::ConvGeometry geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int64_t stride,
                           int64_t padding, int64_t dilation, int64_t groups) {
  ops::ConvGeometry g;
  g.batch = n;
  g.in_channels = c;
  g.in_h = h;
  g.in_w = w;
  g.out_channels = o;
  g.kernel_h = k;
  g.kernel_w = k;
  g.stride = {stride, stride};
  g.padding = {padding, padding};
  g.dilation = {dilation, dilation};
  g.groups = groups;
  g.out_h = (h + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  g.out_w = (w + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  return g;
}

const ops::ConvGeometry kGeometries[] = {
    geometry(2, 3, 17, 17, 8, 3, 1, 1, 1, 1),    // same-size 3x3
    geometry(4, 64, 56, 56, 128, 1, 2, 0, 1, 1),  // 1x1 stride 2 (ResNet downsample)
    geometry(1, 8, 9, 11, 8, 3, 2, 2, 2, 4),     // dilated, grouped, odd sizes
    geometry(3, 6, 7, 7, 6, 3, 1, 1, 1, 6),      // depthwise
};

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("conv plan: descriptor shapes follow the geometry") {
  for (const ops::ConvGeometry& g : kGeometries) {
    const cuda::ConvDescriptorSpec spec = cuda::conv_descriptor_spec(g, DType::Float32, false);
    CHECK(spec.x_dims == std::array<int, 4>{int(g.batch), int(g.in_channels), int(g.in_h), int(g.in_w)});
    CHECK(spec.y_dims == std::array<int, 4>{int(g.batch), int(g.out_channels), int(g.out_h), int(g.out_w)});
    CHECK(spec.w_dims ==
          std::array<int, 4>{int(g.out_channels), int(g.in_channels / g.groups), int(g.kernel_h), int(g.kernel_w)});
    // Dense NCHW strides.
    CHECK(spec.x_strides == std::array<int, 4>{int(g.in_channels * g.in_h * g.in_w), int(g.in_h * g.in_w),
                                                int(g.in_w), 1});
    CHECK(spec.y_strides[3] == 1);
    CHECK(spec.y_strides[0] == spec.y_dims[1] * spec.y_dims[2] * spec.y_dims[3]);
    CHECK(spec.groups == g.groups);
    CHECK(spec.stride[0] == g.stride[0]);
    CHECK(spec.padding[1] == g.padding[1]);
    CHECK(spec.dilation[0] == g.dilation[0]);
  }
  // Tensor cores (TF32) for float32 only when switched on; float64 has no TF32 to avoid.
  const ops::ConvGeometry& g = kGeometries[0];
  CHECK_FALSE(cuda::conv_descriptor_spec(g, DType::Float32, false).allow_tensor_cores);
  CHECK(cuda::conv_descriptor_spec(g, DType::Float32, true).allow_tensor_cores);
  CHECK(cuda::conv_descriptor_spec(g, DType::Float64, false).allow_tensor_cores);
  // Sizes past cuDNN's int and non-float dtypes are refused by name.
  ops::ConvGeometry huge = g;
  huge.in_w = int64_t{1} << 33;
  CHECK_THROWS_WITH_AS(cuda::conv_descriptor_spec(huge, DType::Float32, false), doctest::Contains("cuDNN's int"), Error);
  CHECK_THROWS_AS(cuda::conv_descriptor_spec(g, DType::Int64, false), Error);
  CHECK(cuda::nchw_dims({2, 3, 4, 5}) == std::array<int, 4>{2, 3, 4, 5});
  CHECK(cuda::dense_strides({2, 3, 4, 5}) == std::array<int, 4>{60, 20, 5, 1});
  CHECK_THROWS_AS(cuda::nchw_dims({2, 3, 4}), Error);
}

TEST_CASE("conv plan: problem keys") {
  const ops::ConvGeometry& g = kGeometries[2];
  const ConvKey key = cuda::conv_key(ConvPass::Forward, g, DType::Float32, false);
  CHECK(key == cuda::conv_key(ConvPass::Forward, g, DType::Float32, false));
  CHECK(key != cuda::conv_key(ConvPass::BackwardData, g, DType::Float32, false));
  CHECK(key != cuda::conv_key(ConvPass::Forward, g, DType::Float64, false));
  CHECK(key != cuda::conv_key(ConvPass::Forward, g, DType::Float32, true));
  // TF32 does not split float64 problems.
  CHECK(cuda::conv_key(ConvPass::Forward, g, DType::Float64, true) ==
        cuda::conv_key(ConvPass::Forward, g, DType::Float64, false));
  // Every geometry field matters.
  auto changed = [&](auto change) {
    ops::ConvGeometry other = g;
    change(other);
    return cuda::conv_key(ConvPass::Forward, other, DType::Float32, false);
  };
  CHECK(key != changed([](auto& o) { o.batch += 1; }));
  CHECK(key != changed([](auto& o) { o.in_channels += 8; }));
  CHECK(key != changed([](auto& o) { o.in_h += 1; }));
  CHECK(key != changed([](auto& o) { o.in_w += 1; }));
  CHECK(key != changed([](auto& o) { o.out_channels += 4; }));
  CHECK(key != changed([](auto& o) { o.kernel_h = 1; }));
  CHECK(key != changed([](auto& o) { o.kernel_w = 1; }));
  CHECK(key != changed([](auto& o) { o.padding[1] = 0; }));
  CHECK(key != changed([](auto& o) { o.stride[0] = 1; }));
  CHECK(key != changed([](auto& o) { o.dilation[1] = 1; }));
  CHECK(key != changed([](auto& o) { o.groups = 2; }));
  CHECK(key != changed([](auto& o) { o.memory_format = MemoryFormat::ChannelsLast; }));
  CHECK(cuda::conv_key_str(key) ==
        "conv2d forward float32 NCHW x[1, 8, 9, 11] w[8, 2, 3, 3] padding (2, 2) stride (2, 2) dilation (2, 2) groups 4");
}

TEST_CASE("conv plan: algorithm choice under a workspace cap") {
  const std::vector<AlgorithmCandidate> candidates = {
      {7, false, 0},        // unsupported: never chosen
      {1, true, 5000},      // cuDNN's favourite, but needs 5000 bytes
      {2, true, 300},
      {3, true, 100},
  };
  // Everything fits: cuDNN's first supported preference.
  auto choice = cuda::choose_algorithm(candidates, 10000, "problem");
  CHECK(choice.algorithm == 1);
  CHECK(choice.workspace_bytes == 5000);
  CHECK(choice.within_cap);
  // The cap rules out the favourite: the next preference that fits.
  choice = cuda::choose_algorithm(candidates, 1000, "problem");
  CHECK(choice.algorithm == 2);
  // Nothing fits: the smallest workspace, flagged.
  choice = cuda::choose_algorithm(candidates, 50, "problem");
  CHECK(choice.algorithm == 3);
  CHECK(choice.workspace_bytes == 100);
  CHECK_FALSE(choice.within_cap);
  // A zero-workspace algorithm always fits.
  CHECK(cuda::choose_algorithm({{4, true, 0}}, 0, "problem").algorithm == 4);
  CHECK_THROWS_WITH_AS(cuda::choose_algorithm({{7, false, 0}}, 1000, "conv2d forward x"),
                       doctest::Contains("conv2d forward x: cuDNN offers no algorithm"), Error);
  CHECK_THROWS_AS(cuda::choose_algorithm({}, 1000, "empty"), Error);
}

TEST_CASE("conv plan: the algorithm cache searches each problem once") {
  cuda::ConvAlgorithmCache cache;
  int searches = 0;
  const ConvKey forward = cuda::conv_key(ConvPass::Forward, kGeometries[0], DType::Float32, false);
  const ConvKey backward =
      cuda::conv_key(ConvPass::BackwardFilter, kGeometries[0], DType::Float32, false);
  auto search = [&](int algorithm) {
    return [&, algorithm] {
      ++searches;
      return cuda::AlgorithmChoice{algorithm, 64, true};
    };
  };
  CHECK(cache.get_or_search(forward, search(5)).algorithm == 5);
  CHECK(cache.get_or_search(forward, search(6)).algorithm == 5);  // cached: no second search
  CHECK(cache.get_or_search(backward, search(6)).algorithm == 6);
  CHECK(searches == 2);
  CHECK(cache.size() == 2);
  // A failed search caches nothing.
  const ConvKey other = cuda::conv_key(ConvPass::Forward, kGeometries[1], DType::Float32, false);
  CHECK_THROWS_AS(cache.get_or_search(other, []() -> cuda::AlgorithmChoice { throw Error("no algorithm"); }), Error);
  CHECK(cache.size() == 2);
  CHECK(cache.get_or_search(other, search(9)).algorithm == 9);
  // Concurrent lookups of one problem agree.
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (cache.get_or_search(forward, search(1)).algorithm != 5) ++wrong;
    });
  for (auto& thread : threads) thread.join();
  CHECK(wrong == 0);
  cache.clear();
  CHECK(cache.size() == 0);
}

#ifdef PNEUMA_WITH_CUDA
TEST_CASE("conv plan: cuDNN descriptors set from the spec give the geometry's output size") {
  for (const ops::ConvGeometry& g : kGeometries) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const cuda::ConvDescriptorSpec spec = cuda::conv_descriptor_spec(g, dtype, false);
      const cuda::ConvDescriptors d(spec, dtype);
      int n = 0, c = 0, h = 0, w = 0;
      REQUIRE(cudnnGetConvolution2dForwardOutputDim(d.conv.get(), d.x.get(), d.w.get(), &n, &c, &h, &w) ==
              CUDNN_STATUS_SUCCESS);
      CHECK(std::array<int, 4>{n, c, h, w} == spec.y_dims);
      int groups = 0;
      REQUIRE(cudnnGetConvolutionGroupCount(d.conv.get(), &groups) == CUDNN_STATUS_SUCCESS);
      CHECK(groups == g.groups);
      cudnnMathType_t math{};
      REQUIRE(cudnnGetConvolutionMathType(d.conv.get(), &math) == CUDNN_STATUS_SUCCESS);
      CHECK(math == (dtype == DType::Float32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
    }
  }
  // A descriptor that cuDNN rejects surfaces as pneuma::Error naming the call.
  cuda::TensorDescriptor bad;
  CHECK_THROWS_WITH_AS(bad.set(DType::Float32, {0, -1, 2, 2}, {1, 1, 1, 1}),
                       doctest::Contains("cudnnSetTensorNdDescriptor"), Error);
}
#endif

}  // TEST_SUITE
