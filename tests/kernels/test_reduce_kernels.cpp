// The sum kernels, executed by the CPU emulator through the Tensor-level launch code of the CUDA
// dispatch (engine/ops/reduce/reduce_kernels.h), against the CPU sum. Both accumulate in double,
// in different orders, so results agree to rounding of the double sums.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/ops/reduce/minmax_cpu.h"
#include "engine/ops/reduce/reduce_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_close;

namespace {

// The emulated CUDA sum of x over dims, shaped like pneuma::sum's result.
Tensor emulated_sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const std::vector<int64_t> dims = ops::reduction_dims(x, dims_in, "sum");
  Tensor out = Tensor::empty(ops::reduced_shape(x.shape(), dims, keepdim), x.dtype());
  kern::run_sum(x, dims, out, kern::Stream{});
  return out;
}

struct Case {
  Shape shape;
  std::vector<int64_t> dims;  // empty: everything
};

// Short rows (serial kernel), block rows, and few long rows (split into partial sums).
const Case kCases[] = {
    {{7}, {}},           {{3, 5}, {1}},       {{3, 5}, {0}},        {{4, 6, 5}, {0, 2}}, {{2, 3, 40}, {2}},
    {{33, 70}, {0}},     {{2, 9000}, {1}},    {{9000, 2}, {0}},     {{3, 2, 5000}, {}},  {{5, 0, 3}, {1}},
    {{6, 1, 17}, {1, 2}}, {{2, 3, 4, 5}, {1, 3}},
};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated sum", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Case& c : kCases) {
    for (const bool keepdim : {false, true}) {
      for (const bool transposed : {false, true}) {
        CAPTURE(shape_str(c.shape));
        CAPTURE(c.dims.size());
        CAPTURE(keepdim);
        CAPTURE(transposed);
        Tensor x = testing::uniform_values(c.shape, 5, dtype, -2, 2);
        if (transposed && x.dim() > 1) {
          // Same logical shape, reversed storage order.
          Shape reversed(c.shape.rbegin(), c.shape.rend());
          std::vector<int64_t> order;
          for (int64_t d = x.dim() - 1; d >= 0; --d) order.push_back(d);
          x = testing::uniform_values(reversed, 6, dtype, -2, 2).permute(order);
          REQUIRE(x.shape() == c.shape);
        }
        require_close(sum(x, c.dims, keepdim), emulated_sum(x, c.dims, keepdim));
      }
    }
  }
}

TEST_CASE("emulated sum: the launch plan") {
  const kern::SumLaunchPlan serial = kern::plan_sum(1000, 16);
  CHECK(serial.serial);
  const kern::SumLaunchPlan rows = kern::plan_sum(10, 100);
  CHECK_FALSE(rows.serial);
  CHECK(rows.splits == 1);
  CHECK(rows.threads == 128);
  const kern::SumLaunchPlan split = kern::plan_sum(2, 9000);
  CHECK(split.splits == 3);
  CHECK(split.threads == 256);
  CHECK(kern::plan_sum(1, int64_t{1} << 30).splits == kern::kReduceTargetBlocks);
  CHECK(kern::plan_sum(5000, 100000).splits == 1);  // enough rows to fill the GPU already
}

TEST_CASE_TEMPLATE("emulated sum: any grid and block shape", T, float, double) {
  // x [5, 300] summed over dim 1 with block sizes that leave partial warps, and fewer blocks than rows.
  const Tensor x = testing::uniform_values({300, 5}, 9, dtype_v<T>, -2, 2).transpose(0, 1);
  const Tensor expected = sum(x, {1});
  const auto row_offsets = kern::make_offset_calculator<1>({5}, {Strides{x.strides()[0]}});
  const auto col_offsets = kern::make_offset_calculator<1>({300}, {Strides{x.strides()[1]}});
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{2, 33}, Launch{5, 64}, Launch{3, 100}, Launch{9, 1024}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    const Tensor out = Tensor::empty({5}, dtype_v<T>), serial_out = Tensor::empty({5}, dtype_v<T>);
    auto kernel = &kern::sum_rows_kernel<T, T, double>;
    PNEUMA_LAUNCH(kernel, launch.blocks, launch.threads, 0, kern::Stream{}, x.data<T>(), row_offsets, col_offsets,
                  int64_t{5}, int64_t{300}, int64_t{1}, out.data<T>(), 1.0);
    require_close(expected, out);
    auto serial = &kern::sum_rows_serial_kernel<T, T, double>;
    PNEUMA_LAUNCH(serial, launch.blocks, launch.threads, 0, kern::Stream{}, x.data<T>(), row_offsets, col_offsets,
                  int64_t{5}, int64_t{300}, serial_out.data<T>(), 1.0);
    require_close(expected, serial_out);
  }
}

TEST_CASE("emulated sum: deterministic - and bad shapes refused") {
  const Tensor x = testing::uniform_values({3, 20000}, 11, DType::Float32, -2, 2);
  const Tensor first = emulated_sum(x, {1}, false), second = emulated_sum(x, {1}, false);
  CHECK(first.to_vector() == second.to_vector());
  // A sum over an empty dim is 0, as in PyTorch.
  CHECK(emulated_sum(Tensor::empty({2, 0, 3}), {1}, false).to_vector() == std::vector<double>(6, 0.0));
  CHECK(sum(Tensor::empty({2, 0, 3}), {1}).to_vector() == std::vector<double>(6, 0.0));
  float out = 0;
  CHECK_THROWS_AS(kern::launch_sum_rows<float>(nullptr, {}, {}, -1, 3, &out, nullptr, kern::Stream{}),
                  std::invalid_argument);
  // A split sum without its partials buffer.
  CHECK_THROWS_AS(kern::launch_sum_rows<float>(x.data<float>(), {}, kern::make_offset_calculator<1>({20000}, {Strides{1}}),
                                               1, 20000, &out, nullptr, kern::Stream{}),
                  std::invalid_argument);
}

TEST_CASE("emulated max and min") {
  struct Case {
    int64_t rows, cols;
  };
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8, DType::Bool}) {
    for (const Case c : {Case{1, 1}, Case{5, 7}, Case{3, 300}, Case{40, 33}}) {
      for (const bool is_max : {true, false}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(c.rows);
        CAPTURE(c.cols);
        CAPTURE(is_max);
        // Few distinct values (ties everywhere); NaNs in two rows of float data, one of them twice.
        std::vector<double> v = Tensor::rand({c.rows * c.cols}, 8, DType::Float64).to_vector();
        for (double& x : v) x = std::floor(4 * x);
        if (is_floating(dtype) && c.rows > 2) {
          v[c.cols + c.cols / 2] = std::numeric_limits<double>::quiet_NaN();
          v[2 * c.cols + 1] = v[2 * c.cols + c.cols - 1] = std::numeric_limits<double>::quiet_NaN();
        }
        const Tensor rows = Tensor::from_vector(v, {c.rows, c.cols}, dtype);
        const Tensor values = Tensor::empty({c.rows}, dtype), indices = Tensor::empty({c.rows}, DType::Int64);
        const Tensor values_k = Tensor::empty({c.rows}, dtype), indices_k = Tensor::empty({c.rows}, DType::Int64);
        cpu::minmax_rows(rows, is_max, values, indices);
        kern::run_minmax_rows(rows, is_max, values_k, indices_k, kern::Stream{});
        CHECK(std::memcmp(values.raw_data(), values_k.raw_data(), c.rows * dtype_size(dtype)) == 0);
        CHECK(indices.to_indices() == indices_k.to_indices());
        // Values only.
        const Tensor values_only = Tensor::empty({c.rows}, dtype);
        kern::run_minmax_rows(rows, is_max, values_only, Tensor(), kern::Stream{});
        CHECK(std::memcmp(values.raw_data(), values_only.raw_data(), c.rows * dtype_size(dtype)) == 0);
      }
    }
  }
  // Block sizes with partial warps and fewer blocks than rows.
  const Tensor rows = Tensor::randn({9, 100}, 9, DType::Float64);
  const Tensor values = Tensor::empty({9}, DType::Float64), indices = Tensor::empty({9}, DType::Int64);
  cpu::minmax_rows(rows, true, values, indices);
  for (const unsigned threads : {1u, 33u, 256u}) {
    for (const unsigned blocks : {1u, 4u, 9u}) {
      const Tensor values_k = Tensor::empty({9}, DType::Float64), indices_k = Tensor::empty({9}, DType::Int64);
      auto kernel = &kern::minmax_rows_kernel<double>;
      PNEUMA_LAUNCH(kernel, blocks, threads, 0, kern::Stream{}, rows.data<double>(), int64_t{9}, int64_t{100}, true,
                    values_k.data<double>(), indices_k.data<int64_t>());
      CHECK(values_k.to_vector() == values.to_vector());
      CHECK(indices_k.to_indices() == indices.to_indices());
    }
  }
  float out = 0;
  CHECK_THROWS_AS(kern::launch_minmax_rows<float>(nullptr, 2, 0, true, &out, nullptr, kern::Stream{}),
                  std::invalid_argument);
}

}  // TEST_SUITE
