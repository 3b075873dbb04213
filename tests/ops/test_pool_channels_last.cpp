// Pooling on channels-last (NHWC in memory) input on the CPU: outputs, max-pool indices and input
// gradients keep the layout as PyTorch 1.13's do, and their values equal the row-major path's bit
// for bit on both CPU paths (oneDNN's nhwc primitives for float32 and bfloat16; the reference loops
// on row-major copies for float64 and for what oneDNN refuses), plus float64 gradient checks.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "engine/cpu/fast_path.h"
#include "engine/ops/pool/pool_onednn.h"
#include "tests/kernels/kernel_check.h"
#include "tests/ops/channels_last_check.h"
#include "tests/support/gradcheck.h"

using namespace pneuma;
using pneuma::testing::channels_last;
using pneuma::testing::gradcheck;
using pneuma::testing::output_and_input_gradient;
using pneuma::testing::random_input;
using pneuma::testing::require_channels_last;
using pneuma::testing::require_same_bits;
using pneuma::testing::UnaryOp;

namespace {

struct PoolCase {
  std::string name;
  Shape shape;
  UnaryOp op;
};

// ResNet's pools, windows oneDNN takes and ones it refuses (then the reference loops run).
std::vector<PoolCase> pool_cases() {
  return {
      {"max_pool2d 3x3 s2 p1 (ResNet stem)", {2, 16, 9, 9},
       [](const Tensor& x) { return max_pool2d(x, {3, 3}, {2, 2}, {1, 1}); }},
      {"max_pool2d 2x2", {2, 8, 8, 8}, [](const Tensor& x) { return max_pool2d(x, {2, 2}); }},
      {"max_pool2d dilation ceil", {2, 4, 9, 10},
       [](const Tensor& x) { return max_pool2d(x, {3, 2}, {2, 3}, {1, 1}, {2, 1}, true); }},
      {"avg_pool2d 2x2", {2, 16, 8, 8}, [](const Tensor& x) { return avg_pool2d(x, {2, 2}); }},
      {"avg_pool2d 3x3 s2 p1 exclude pad", {2, 8, 9, 10},
       [](const Tensor& x) { return avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false, false); }},
      {"avg_pool2d ceil past the padding (reference loops)", {2, 4, 8, 7},
       [](const Tensor& x) { return avg_pool2d(x, {3, 2}, {2, 2}, {1, 1}, true, true); }},
      {"avg_pool2d divisor override (reference loops)", {2, 4, 8, 7},
       [](const Tensor& x) { return avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, false, true, 4); }},
      {"adaptive_avg_pool2d 1x1 (oneDNN windows)", {2, 16, 7, 7},
       [](const Tensor& x) { return adaptive_avg_pool2d(x, {1, 1}); }},
      {"adaptive_avg_pool2d 3x2 (reference loops)", {2, 8, 7, 5},
       [](const Tensor& x) { return adaptive_avg_pool2d(x, {3, 2}); }},
  };
}

}  // namespace

TEST_SUITE("channels_last") {

TEST_CASE("pool channels last matches the NCHW path") {
  for (const PoolCase& c : pool_cases()) {
    for (const DType dtype : {DType::Float32, DType::BFloat16, DType::Float64}) {
      for (const bool fast : {true, false}) {
        CAPTURE(c.name);
        const std::string dtype_label = dtype_name(dtype);
        CAPTURE(dtype_label);
        CAPTURE(fast);
        std::optional<cpu::FastPathGuard> reference_only;
        if (!fast) reference_only.emplace();
        const Tensor x = Tensor::randn(c.shape, 11, DType::Float32).to(dtype);
        const Tensor g = Tensor::randn(c.op(x).shape(), 12, DType::Float32).to(dtype);
        const auto expected = output_and_input_gradient(c.op, x, MemoryFormat::Contiguous, g);
        const auto actual = output_and_input_gradient(c.op, x, MemoryFormat::ChannelsLast, channels_last(g));
        require_channels_last(actual.y, "output");
        require_channels_last(actual.dx, "input gradient");
        // The same window order on both layouts: equal bits (oneDNN's nhwc kernels too; bfloat16
        // gradients of overlapping windows are summed in float and rounded once on both).
        {
          INFO("output");
          require_same_bits(expected.y, actual.y);
        }
        {
          INFO("input gradient");
          require_same_bits(expected.dx, actual.dx);
        }
        // A row-major output gradient (as a loss that is not channels-last sends) gives the same.
        const auto from_row_major = output_and_input_gradient(c.op, x, MemoryFormat::ChannelsLast, g);
        require_channels_last(from_row_major.dx, "input gradient from a row-major output gradient");
        require_same_bits(expected.dx, from_row_major.dx);
      }
    }
  }
}

TEST_CASE("pool channels last takes oneDNN where NCHW does") {
  // oneDNN has nhwc primitives for ResNet's pooling in float32 and bfloat16, so channels-last input
  // does not fall back to the reference loops where row-major input would not.
  kern::Pool2d p;
  p.N = 2, p.C = 64, p.ih = p.iw = 56, p.kh = p.kw = 3, p.sh = p.sw = 2, p.ph = p.pw = 1;
  p.oh = p.ow = 28;
  for (const DType dtype : {DType::Float32, DType::BFloat16}) {
    for (const bool cl : {false, true}) {
      p.channels_last = cl;
      CHECK(cpu::max_pool2d_onednn_supported(p, true, dtype));
      CHECK(cpu::avg_pool2d_onednn_supported(p, {false, std::nullopt}, dtype));
    }
  }
}

// The strides PyTorch 1.13 (CPU) prints for x = torch.randn(2, 3, 8, 8, requires_grad=True)
// .to(memory_format=torch.channels_last) pooled as below: outputs, max-pool indices, and the
// gradient reaching x (channels-last whatever the output gradient's layout).
TEST_CASE("pool channels last strides equal torch's") {
  const Tensor x = channels_last(Tensor::randn({2, 3, 8, 8}, 5).set_requires_grad(true));
  REQUIRE(x.strides() == Strides{192, 1, 24, 3});
  CHECK(max_pool2d_with_indices(x, {3, 3}, {2, 2}, {1, 1}).second.strides() == Strides{48, 1, 12, 3});
  struct Expected {
    const char* name;
    UnaryOp op;
    Strides y;
  };
  const Expected expected[] = {
      {"max_pool2d", [](const Tensor& t) { return max_pool2d(t, {3, 3}, {2, 2}, {1, 1}); }, {48, 1, 12, 3}},
      {"avg_pool2d", [](const Tensor& t) { return avg_pool2d(t, {3, 3}, {2, 2}, {1, 1}); }, {48, 1, 12, 3}},
      {"adaptive 1x1", [](const Tensor& t) { return adaptive_avg_pool2d(t, {1, 1}); }, {3, 1, 3, 3}},
      {"adaptive 3x2", [](const Tensor& t) { return adaptive_avg_pool2d(t, {3, 2}); }, {18, 1, 6, 3}},
  };
  for (const Expected& e : expected) {
    CAPTURE(e.name);
    const Tensor y = e.op(x);
    CHECK(y.strides() == e.y);
    NoGradGuard no_grad;
    CHECK(y.grad_fn()->apply(Tensor::ones(y.shape()))[0].strides() == Strides{192, 1, 24, 3});
  }
}

TEST_CASE("pool channels last keeps other layouts") {
  // Row-major and unbatched inputs stay row-major; a non-dense input whose strides order it as
  // NHWC (a slice of a channels-last tensor) suggests channels-last, as in torch.
  const Tensor x = Tensor::randn({2, 4, 8, 10}, 6);
  CHECK(max_pool2d(x, {2, 2}).is_contiguous());
  CHECK(avg_pool2d(Tensor::randn({4, 8, 10}, 7), {2, 2}).is_contiguous());
  const Tensor sliced = channels_last(x).slice(3, 1, 9);
  REQUIRE(!sliced.is_non_overlapping_and_dense());
  const Tensor y = max_pool2d(sliced, {2, 2});
  require_channels_last(y, "output of a sliced channels-last input");
  require_same_bits(max_pool2d(x.slice(3, 1, 9).contiguous(), {2, 2}), y);
  require_channels_last(adaptive_avg_pool2d(sliced, {1, 1}), "adaptive 1x1 of a sliced channels-last input");
}

TEST_CASE("max_pool2d channels last indices") {
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    const std::string dtype_label = dtype_name(dtype);
    CAPTURE(dtype_label);
    const Tensor x = Tensor::randn({2, 5, 9, 11}, 8, DType::Float32).to(dtype);
    const auto [y_ref, i_ref] = max_pool2d_with_indices(x, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true);
    const auto [y, i] = max_pool2d_with_indices(channels_last(x), {3, 3}, {2, 2}, {1, 1}, {1, 1}, true);
    require_channels_last(i, "indices");
    require_same_bits(y_ref, y);
    require_same_bits(i_ref, i);  // h * W + w within the plane whatever the layout, as torch
  }
}

}  // TEST_SUITE("channels_last")

TEST_SUITE("gradcheck") {

// The leaf is row-major (gradcheck perturbs it flat); the op sees its channels-last copy, so the
// checked gradient flows through the channels-last backward.
TEST_CASE("gradcheck max_pool2d channels last") {
  gradcheck([](const auto& x) { return max_pool2d(channels_last(x[0]), {3, 3}, {2, 2}, {1, 1}); },
            {random_input({2, 3, 7, 8}, 1)});
  gradcheck([](const auto& x) { return max_pool2d(channels_last(x[0]), {3, 2}, {2, 3}, {1, 1}, {2, 1}, true); },
            {random_input({1, 4, 9, 10}, 2)});
}

TEST_CASE("gradcheck avg_pool2d channels last") {
  gradcheck([](const auto& x) { return avg_pool2d(channels_last(x[0]), {3, 3}, {2, 2}, {1, 1}); },
            {random_input({2, 3, 7, 8}, 3)});
  gradcheck([](const auto& x) { return avg_pool2d(channels_last(x[0]), {3, 2}, {2, 2}, {1, 1}, true, false); },
            {random_input({1, 4, 8, 7}, 4)});
}

TEST_CASE("gradcheck adaptive_avg_pool2d channels last") {
  gradcheck([](const auto& x) { return adaptive_avg_pool2d(channels_last(x[0]), {3, 2}); },
            {random_input({2, 3, 7, 5}, 5)});
  gradcheck([](const auto& x) { return adaptive_avg_pool2d(channels_last(x[0]), {1, 1}); },
            {random_input({2, 3, 4, 5}, 6)});
}

}  // TEST_SUITE("gradcheck")
