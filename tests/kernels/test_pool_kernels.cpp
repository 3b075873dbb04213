// The pooling kernels, executed by the CPU emulator through the Tensor-level launch code of the
// CUDA dispatch (engine/ops/pool/pool_kernels.h), against the CPU reference loops. Forward windows
// are visited and backward gradients gathered in the loops' order: results are bitwise equal.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/ops/pool/pool_kernels.h"
#include "engine/pneuma.h"
#include "tests/kernels/kernel_check.h"

using namespace pneuma;
using kern::Pool2d;
using pneuma::testing::require_same_bits;

namespace {

struct Window {
  int64_t k, s, p, d;
  bool ceil_mode;
};

Pool2d geometry(int64_t N, int64_t C, int64_t ih, int64_t iw, Window h, Window w) {
  Pool2d p;
  p.N = N, p.C = C, p.ih = ih, p.iw = iw;
  p.kh = h.k, p.sh = h.s, p.ph = h.p, p.dh = h.d;
  p.kw = w.k, p.sw = w.s, p.pw = w.p, p.dw = w.d;
  p.oh = kern::pool_output_size(ih, h.k, h.p, h.s, h.d, h.ceil_mode);
  p.ow = kern::pool_output_size(iw, w.k, w.p, w.s, w.d, w.ceil_mode);
  return p;
}

// Values on a coarse grid so that windows hold ties; a NaN in plane 0.
Tensor input(const Pool2d& p, DType dtype, bool with_nan) {
  std::vector<double> v = Tensor::rand({p.N * p.C * p.ih * p.iw}, 3, DType::Float64).to_vector();
  for (double& x : v) x = std::floor(8 * x) / 4;
  if (with_nan) v[v.size() / 3] = std::numeric_limits<double>::quiet_NaN();
  return Tensor::from_vector(v, {p.N * p.C, p.ih, p.iw}, dtype);
}

Tensor shaped(const Pool2d& p, bool output, DType dtype) {
  return Tensor::empty(output ? Shape{p.N * p.C, p.oh, p.ow} : Shape{p.N * p.C, p.ih, p.iw}, dtype);
}

const Pool2d kGeometries[] = {
    geometry(2, 3, 7, 9, {2, 2, 0, 1, false}, {2, 2, 0, 1, false}),  // the common 2x2
    geometry(1, 2, 11, 10, {3, 2, 1, 1, false}, {3, 2, 1, 1, true}),  // ResNet's 3x3/2 pad 1, ceil in w
    geometry(2, 1, 9, 8, {3, 1, 1, 2, true}, {2, 3, 1, 1, false}),    // dilation, stride > kernel
    geometry(1, 1, 5, 5, {5, 1, 2, 1, false}, {4, 1, 2, 1, true}),    // windows larger than half the input
};

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("emulated max_pool2d", T, float, double) {
  for (const Pool2d& p : kGeometries) {
    for (const bool with_nan : {false, true}) {
      CAPTURE(p.ih);
      CAPTURE(p.kh);
      CAPTURE(with_nan);
      const Tensor x = input(p, dtype_v<T>, with_nan);
      const Tensor y_ref = shaped(p, true, dtype_v<T>), y = shaped(p, true, dtype_v<T>);
      const Tensor i_ref = Tensor::empty(y.shape(), DType::Int64), i = Tensor::empty(y.shape(), DType::Int64);
      cpu::max_pool2d_forward(x, p, y_ref, i_ref);
      kern::run_max_pool2d_forward(x, p, y, i, kern::Stream{});
      require_same_bits(y_ref, y);
      require_same_bits(i_ref, i);
      const Tensor g = Tensor::randn(y.shape(), 4, dtype_v<T>);
      const Tensor dx_ref = shaped(p, false, dtype_v<T>), dx = shaped(p, false, dtype_v<T>);
      cpu::max_pool2d_backward(g, i_ref, p, dx_ref);
      kern::run_max_pool2d_backward(g, i_ref, p, dx, kern::Stream{});
      require_same_bits(dx_ref, dx);
    }
  }
}

TEST_CASE_TEMPLATE("emulated avg_pool2d", T, float, double) {
  const cpu::AvgOptions options[] = {{true, std::nullopt}, {false, std::nullopt}, {true, 3}};
  for (const Pool2d& base : kGeometries) {
    Pool2d p = base;  // avg pooling has no dilation
    p.dh = p.dw = 1;
    p.oh = kern::pool_output_size(p.ih, p.kh, p.ph, p.sh, 1, false);
    p.ow = kern::pool_output_size(p.iw, p.kw, p.pw, p.sw, 1, true);
    for (const cpu::AvgOptions& o : options) {
      CAPTURE(p.ih);
      CAPTURE(o.count_include_pad);
      CAPTURE(o.divisor_override.has_value());
      const Tensor x = input(p, dtype_v<T>, false);
      const Tensor y_ref = shaped(p, true, dtype_v<T>), y = shaped(p, true, dtype_v<T>);
      cpu::avg_pool2d_forward(x, p, o, y_ref);
      kern::run_avg_pool2d_forward(x, p, o, y, kern::Stream{});
      require_same_bits(y_ref, y);
      const Tensor g = Tensor::randn(y.shape(), 5, dtype_v<T>);
      const Tensor dx_ref = shaped(p, false, dtype_v<T>), dx = shaped(p, false, dtype_v<T>);
      cpu::avg_pool2d_backward(g, p, o, dx_ref);
      kern::run_avg_pool2d_backward(g, p, o, dx, kern::Stream{});
      require_same_bits(dx_ref, dx);
    }
  }
}

TEST_CASE_TEMPLATE("emulated adaptive_avg_pool2d", T, float, double) {
  struct Sizes {
    int64_t ih, iw, oh, ow;
  };
  // Global pooling, uneven bins, and more outputs than inputs (overlapping bins).
  for (const Sizes s : {Sizes{7, 7, 1, 1}, Sizes{10, 7, 3, 4}, Sizes{3, 5, 7, 6}, Sizes{6, 6, 6, 6}}) {
    CAPTURE(s.ih);
    CAPTURE(s.oh);
    Pool2d p;
    p.N = 2, p.C = 3, p.ih = s.ih, p.iw = s.iw, p.oh = s.oh, p.ow = s.ow;
    const Tensor x = input(p, dtype_v<T>, false);
    const Tensor y_ref = shaped(p, true, dtype_v<T>), y = shaped(p, true, dtype_v<T>);
    cpu::adaptive_avg_pool2d_forward(x, p, y_ref);
    kern::run_adaptive_avg_pool2d_forward(x, p, y, kern::Stream{});
    require_same_bits(y_ref, y);
    const Tensor g = Tensor::randn(y.shape(), 6, dtype_v<T>);
    const Tensor dx_ref = shaped(p, false, dtype_v<T>), dx = shaped(p, false, dtype_v<T>);
    cpu::adaptive_avg_pool2d_backward(g, p, dx_ref);
    kern::run_adaptive_avg_pool2d_backward(g, p, dx, kern::Stream{});
    require_same_bits(dx_ref, dx);
  }
}

TEST_CASE("emulated pooling: any grid and block shape") {
  const Pool2d p = kGeometries[1];
  const Tensor x = input(p, DType::Float32, false);
  const Tensor y_ref = shaped(p, true, DType::Float32), i_ref = Tensor::empty(y_ref.shape(), DType::Int64);
  cpu::max_pool2d_forward(x, p, y_ref, i_ref);
  const Tensor g = Tensor::randn(y_ref.shape(), 7);
  const Tensor dx_ref = shaped(p, false, DType::Float32);
  cpu::max_pool2d_backward(g, i_ref, p, dx_ref);
  struct Launch {
    unsigned blocks, threads;
  };
  for (const Launch launch : {Launch{1, 1}, Launch{3, 33}, Launch{100, 32}}) {
    CAPTURE(launch.blocks);
    CAPTURE(launch.threads);
    const Tensor y = shaped(p, true, DType::Float32), i = Tensor::empty(y.shape(), DType::Int64);
    const Tensor dx = shaped(p, false, DType::Float32);
    auto forward = &kern::max_pool2d_forward_kernel<float>;
    PNEUMA_LAUNCH(forward, launch.blocks, launch.threads, 0, kern::Stream{}, x.data<float>(), y.data<float>(),
                  i.data<int64_t>(), p);
    require_same_bits(y_ref, y);
    require_same_bits(i_ref, i);
    auto backward = &kern::max_pool2d_backward_kernel<float>;
    PNEUMA_LAUNCH(backward, launch.blocks, launch.threads, 0, kern::Stream{}, g.data<float>(), i.data<int64_t>(),
                  dx.data<float>(), p);
    require_same_bits(dx_ref, dx);
  }
  CHECK(kern::floor_div(-3, 2) == -2);
  CHECK(kern::floor_div(3, 2) == 1);
  CHECK(kern::floor_div(-4, 2) == -2);
}

}  // TEST_SUITE
