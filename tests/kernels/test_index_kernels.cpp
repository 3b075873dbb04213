// The indexing kernels (index_select, index_add, gather, scatter_add and the index range check),
// executed by the CPU emulator through the Tensor-level launch code of the CUDA dispatch
// (engine/ops/index/index_kernels.h), against the CPU loops (engine/ops/index/index_cpu.h).
// Copies must match bit for bit; the atomic additions of index_add/scatter_add may add repeated
// indices in another order, so those compare with a tolerance.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/ops/index/index_cpu.h"
#include "engine/ops/index/index_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using pneuma::testing::require_close;
using pneuma::testing::require_same_bits;

namespace {

// The default launch, one block of one warp, a block size that is not a multiple of a warp with
// fewer blocks than elements need (grid-stride loops), and more threads than elements.
const kern::IndexLaunch kLaunches[] = {{0, 0}, {1, 32}, {3, 50}, {2, 1024}};

struct Case {
  Shape shape;
  int64_t dim;
};

// 1-d, indexed dim first, middle, last; sizes that are not multiples of a block.
const Case kCases[] = {{{7}, 0}, {{5, 3}, 0}, {{3, 5, 4}, 1}, {{2, 3, 37}, 2}, {{40, 33}, 1}, {{4, 0, 3}, 2}};

// Indices into a dim of size n: both ends, repeats, and more indices than n.
Tensor indices_for(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> v;
  const std::vector<double> r = Tensor::rand({count}, seed, DType::Float64).to_vector();
  for (int64_t i = 0; i < count; ++i) v.push_back(static_cast<int64_t>(r[i] * static_cast<double>(n)) % n);
  if (count > 0) v[0] = n - 1;
  if (count > 1) v[1] = 0;
  if (count > 2) v[2] = v[0];
  return Tensor::from_indices(v, {count});
}

Tensor values(const Shape& shape, uint64_t seed, DType dtype) {
  if (dtype == DType::Bool) return pneuma::gt(testing::uniform_values(shape, seed, DType::Float32, -1, 1), 0.0);
  if (dtype == DType::Int64) return testing::uniform_values(shape, seed, DType::Float64, -50, 50, 1).to(dtype);
  return testing::uniform_values(shape, seed, dtype, -2, 2);
}

// Index of shape index_shape (entries in [0, n)) for gather/scatter along dim.
Tensor gather_index(const Shape& index_shape, int64_t n, uint64_t seed) {
  const int64_t count = numel_of(index_shape);
  return indices_for(n, count, seed).reshape(index_shape);
}

// The message of the Error fn throws (empty when it throws none).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE("emulated index_select") {
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    for (const Case& c : kCases) {
      for (const int64_t count : {int64_t{1}, int64_t{5}, int64_t{70}}) {
        if (c.shape[c.dim] == 0) continue;
        for (const kern::IndexLaunch& launch : kLaunches) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(shape_str(c.shape));
          CAPTURE(c.dim);
          CAPTURE(count);
          CAPTURE(launch.threads);
          const Tensor x = values(c.shape, 3, dtype);
          const Tensor index = indices_for(c.shape[c.dim], count, 4);
          Shape out_shape = c.shape;
          out_shape[c.dim] = count;
          const Tensor expected = Tensor::empty(out_shape, dtype), actual = Tensor::empty(out_shape, dtype);
          cpu::index_select(x, c.dim, index, expected);
          kern::run_index_select(x, c.dim, index, actual, kern::Stream{}, kern::IndexCheck::Validate, launch);
          require_same_bits(expected, actual);
        }
      }
    }
  }
  // A 0-d input takes one index; a transposed input is read through its strides.
  const Tensor scalar = Tensor::full({}, 2.5);
  Tensor out = Tensor::empty({});
  kern::run_index_select(scalar, 0, Tensor::from_indices({0}, {1}), out, kern::Stream{});
  CHECK(out.item() == 2.5);
  const Tensor transposed = values({6, 4}, 9, DType::Float32).transpose(0, 1);
  const Tensor index = Tensor::from_indices({5, 0, 2}, {3});
  Tensor actual = Tensor::empty({4, 3});
  kern::run_index_select(transposed, 1, index, actual, kern::Stream{});
  require_same_bits(index_select(transposed, 1, index), actual);
}

TEST_CASE_TEMPLATE("emulated index_add", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Case& c : kCases) {
    for (const int64_t count : {int64_t{1}, int64_t{5}, int64_t{70}}) {
      if (c.shape[c.dim] == 0) continue;
      for (const kern::IndexLaunch& launch : kLaunches) {
        CAPTURE(shape_str(c.shape));
        CAPTURE(c.dim);
        CAPTURE(count);
        CAPTURE(launch.threads);
        Shape src_shape = c.shape;
        src_shape[c.dim] = count;
        const Tensor src = values(src_shape, 5, dtype);
        const Tensor index = indices_for(c.shape[c.dim], count, 6);
        const Tensor expected = values(c.shape, 7, dtype), actual = expected.clone();
        cpu::index_add(expected, c.dim, index, src);
        kern::run_index_add(actual, c.dim, index, src, kern::Stream{}, kern::IndexCheck::Validate, launch);
        require_close(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated gather") {
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    for (const Case& c : kCases) {
      for (const bool transposed : {false, true}) {
        if (c.shape[c.dim] == 0) continue;
        for (const kern::IndexLaunch& launch : kLaunches) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(shape_str(c.shape));
          CAPTURE(c.dim);
          CAPTURE(transposed);
          CAPTURE(launch.threads);
          Tensor x = values(c.shape, 11, dtype);
          if (transposed && x.dim() > 1) {
            Shape reversed(c.shape.rbegin(), c.shape.rend());
            std::vector<int64_t> order;
            for (int64_t d = x.dim() - 1; d >= 0; --d) order.push_back(d);
            x = values(reversed, 12, dtype).permute(order);
          }
          // index: longer than x along dim, shorter (by one, where possible) elsewhere.
          Shape index_shape = c.shape;
          for (int64_t d = 0; d < static_cast<int64_t>(index_shape.size()); ++d)
            index_shape[d] = d == c.dim ? c.shape[d] + 3 : std::max<int64_t>(c.shape[d] - 1, c.shape[d] == 0 ? 0 : 1);
          const Tensor index = gather_index(index_shape, c.shape[c.dim], 13);
          const Tensor expected = Tensor::empty(index_shape, dtype), actual = Tensor::empty(index_shape, dtype);
          cpu::gather(x, c.dim, index, expected, "gather");
          kern::run_gather(x, c.dim, index, actual, "gather", kern::Stream{}, kern::IndexCheck::Validate, launch);
          require_same_bits(expected, actual);
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("emulated scatter_add", T, float, double) {
  const DType dtype = dtype_v<T>;
  for (const Case& c : kCases) {
    for (const bool strided_src : {false, true}) {
      if (c.shape[c.dim] == 0) continue;
      for (const kern::IndexLaunch& launch : kLaunches) {
        CAPTURE(shape_str(c.shape));
        CAPTURE(c.dim);
        CAPTURE(strided_src);
        CAPTURE(launch.threads);
        Shape index_shape = c.shape;
        index_shape[c.dim] = c.shape[c.dim] * 2 + 1;  // every destination hit about twice
        Tensor src = values(index_shape, 17, dtype);
        if (strided_src) {
          // A larger src of which index covers a corner, seen through a slice.
          Shape bigger = index_shape;
          for (int64_t& s : bigger) s += 2;
          src = values(bigger, 18, dtype);
          for (int64_t d = 0; d < src.dim(); ++d) src = src.slice(d, 1, 1 + index_shape[d]);
        }
        const Tensor index = gather_index(index_shape, c.shape[c.dim], 19);
        const Tensor expected = values(c.shape, 20, dtype), actual = expected.clone();
        cpu::scatter_add(expected, c.dim, index, src, "scatter_add");
        kern::run_scatter_add(actual, c.dim, index, src, "scatter_add", kern::Stream{}, kern::IndexCheck::Validate,
                              launch);
        require_close(expected, actual);
      }
    }
  }
}

TEST_CASE("emulated index kernels refuse out-of-range indices with the CPU loops' message") {
  const Tensor x = values({4, 5}, 23, DType::Float32);
  // Several bad indices: the first one in index order is the one named, whichever thread saw it.
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{1, 5, 0, -1}, std::vector<int64_t>{-1, 2, 5},
                                          std::vector<int64_t>{4, 3, 2, 1, 0, 7}}) {
    for (const kern::IndexLaunch& launch : kLaunches) {
      CAPTURE(bad.size());
      CAPTURE(launch.threads);
      const int64_t k = static_cast<int64_t>(bad.size());
      const Tensor index = Tensor::from_indices(bad, {k});

      const Tensor selected = Tensor::empty({4, k});
      const std::string select_cpu = error_of([&] { cpu::index_select(x, 1, index, selected); });
      REQUIRE(select_cpu.find("out of bounds for dim 1 with size 5") != std::string::npos);
      CHECK(error_of([&] {
              kern::run_index_select(x, 1, index, selected, kern::Stream{}, kern::IndexCheck::Validate, launch);
            }) == select_cpu);

      const Tensor sum_into = Tensor::zeros({4, 5}), src = values({4, k}, 24, DType::Float32);
      const std::string add_cpu = error_of([&] { cpu::index_add(sum_into.clone(), 1, index, src); });
      REQUIRE_FALSE(add_cpu.empty());
      const Tensor untouched = sum_into.clone();
      CHECK(error_of([&] {
              kern::run_index_add(untouched, 1, index, src, kern::Stream{}, kern::IndexCheck::Validate, launch);
            }) == add_cpu);
      // Checked before the launch: nothing was added.
      CHECK(untouched.to_vector() == sum_into.to_vector());

      const Tensor index_2d = index.reshape({1, k}).expand({4, k}).contiguous();
      const Tensor gathered = Tensor::empty({4, k});
      const std::string gather_cpu = error_of([&] { cpu::gather(x, 1, index_2d, gathered, "gather"); });
      REQUIRE_FALSE(gather_cpu.empty());
      CHECK(error_of([&] {
              kern::run_gather(x, 1, index_2d, gathered, "gather", kern::Stream{}, kern::IndexCheck::Validate,
                               launch);
            }) == gather_cpu);

      const std::string scatter_cpu =
          error_of([&] { cpu::scatter_add(sum_into.clone(), 1, index_2d, src, "scatter_add"); });
      REQUIRE_FALSE(scatter_cpu.empty());
      CHECK(error_of([&] {
              kern::run_scatter_add(untouched, 1, index_2d, src, "scatter_add", kern::Stream{},
                                    kern::IndexCheck::Validate, launch);
            }) == scatter_cpu);
      CHECK(untouched.to_vector() == sum_into.to_vector());
    }
  }
  // The edges are in range.
  const Tensor edges = Tensor::from_indices({0, 4}, {2});
  Tensor out = Tensor::empty({4, 2});
  CHECK_NOTHROW(kern::run_index_select(x, 1, edges, out, kern::Stream{}));
  require_same_bits(index_select(x, 1, edges), out);
}

}  // TEST_SUITE
