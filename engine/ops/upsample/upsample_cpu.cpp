#include "engine/ops/upsample/upsample_cpu.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "engine/cpu/copy.h"
#include "engine/cpu/parallel.h"
#include "engine/ops/upsample/upsample_math.cuh"

namespace pneuma::cpu {

namespace {

template <class Fn>
void for_planes(const Upsample2d& u, Fn&& fn) {
  parallel_for(u.planes, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) fn(plane);
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(u.oh * u.ow, 1)));
}

std::vector<int64_t> nearest_indices(int64_t in, int64_t out, double scale) {
  std::vector<int64_t> idx(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) idx[o] = kern::nearest_source_index(o, in, out, scale);
  return idx;
}

// Runs scatter(acc) on a zeroed plane of n accumulators in T's math type and stores the plane in
// dst: in place where T is its own math type, through a float plane for bfloat16, whose sums
// would otherwise round at every addition (each element is rounded once, on the copy).
template <class T, class Scatter>
void scatter_plane(T* dst, int64_t n, Scatter&& scatter) {
  using M = opmath_t<T>;
  if constexpr (std::is_same_v<T, M>) {
    std::fill(dst, dst + n, T(0));
    scatter(dst);
  } else {
    thread_local std::vector<M> acc;
    acc.assign(static_cast<size_t>(n), M(0));
    scatter(acc.data());
    std::copy(acc.begin(), acc.end(), dst);
  }
}

template <class T>
std::vector<kern::LinearTaps<T>> linear_taps(int64_t in, int64_t out, bool align_corners, double scale) {
  const T s = kern::area_pixel_scale<T>(in, out, align_corners, scale);
  std::vector<kern::LinearTaps<T>> taps(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) taps[o] = kern::linear_taps<T>(o, in, out, align_corners, s);
  return taps;
}

// The loops walk row-major planes. A channels-last problem runs them on row-major copies (detached
// data: contiguous() records nothing) and copies the result into its channels-last output.
template <class Loop>
void through_row_major(const Tensor& in, const Upsample2d& u, const Tensor& out, Loop&& loop) {
  Upsample2d rows = u;
  rows.channels_last = false;
  const Tensor out_rows = Tensor::empty(out.shape(), out.dtype(), out.device());
  loop(in.contiguous(), rows, out_rows);
  copy_strided(out_rows, out);
}

}  // namespace

void upsample_nearest2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y) {
  if (u.channels_last) return through_row_major(x, u, y, &upsample_nearest2d_forward);
  const std::vector<int64_t> hs = nearest_indices(u.ih, u.oh, u.scale_h), ws = nearest_indices(u.iw, u.ow, u.scale_w);
  dispatch_floating_and_bfloat16(x.dtype(), "upsample_nearest2d", [&]<class T>() {
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for_planes(u, [&](int64_t plane) {
      const T* xp = in + plane * u.ih * u.iw;
      T* yp = out + plane * u.oh * u.ow;
      for (int64_t oh = 0; oh < u.oh; ++oh) {
        const T* row = xp + hs[oh] * u.iw;
        for (int64_t ow = 0; ow < u.ow; ++ow) yp[oh * u.ow + ow] = row[ws[ow]];
      }
    });
  });
}

void upsample_nearest2d_backward(const Tensor& g, const Upsample2d& u, const Tensor& dx) {
  if (u.channels_last) return through_row_major(g, u, dx, &upsample_nearest2d_backward);
  const std::vector<int64_t> hs = nearest_indices(u.ih, u.oh, u.scale_h), ws = nearest_indices(u.iw, u.ow, u.scale_w);
  dispatch_floating_and_bfloat16(g.dtype(), "upsample_nearest2d backward", [&]<class T>() {
    using M = opmath_t<T>;
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(u, [&](int64_t plane) {
      const T* gp = go + plane * u.oh * u.ow;
      scatter_plane(gi + plane * u.ih * u.iw, u.ih * u.iw, [&](M* dp) {
        for (int64_t oh = 0; oh < u.oh; ++oh) {
          M* row = dp + hs[oh] * u.iw;
          for (int64_t ow = 0; ow < u.ow; ++ow) row[ws[ow]] += static_cast<M>(gp[oh * u.ow + ow]);
        }
      });
    });
  });
}

void upsample_bilinear2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y) {
  if (u.channels_last) return through_row_major(x, u, y, &upsample_bilinear2d_forward);
  dispatch_floating_and_bfloat16(x.dtype(), "upsample_bilinear2d", [&]<class T>() {
    using M = opmath_t<T>;
    const auto hs = linear_taps<M>(u.ih, u.oh, u.align_corners, u.scale_h);
    const auto ws = linear_taps<M>(u.iw, u.ow, u.align_corners, u.scale_w);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for_planes(u, [&](int64_t plane) {
      const T* xp = in + plane * u.ih * u.iw;
      T* yp = out + plane * u.oh * u.ow;
      for (int64_t oh = 0; oh < u.oh; ++oh) {
        const kern::LinearTaps<M>& h = hs[oh];
        const T* r0 = xp + h.i0 * u.iw;
        const T* r1 = xp + h.i1 * u.iw;
        for (int64_t ow = 0; ow < u.ow; ++ow) {
          const kern::LinearTaps<M>& w = ws[ow];
          // Rows first, then columns: PyTorch's order of operations.
          const M a = r0[w.i0], b = r0[w.i1], c = r1[w.i0], d = r1[w.i1];
          yp[oh * u.ow + ow] = static_cast<T>((a * w.l0 + b * w.l1) * h.l0 + (c * w.l0 + d * w.l1) * h.l1);
        }
      }
    });
  });
}

void upsample_bilinear2d_backward(const Tensor& g, const Upsample2d& u, const Tensor& dx) {
  if (u.channels_last) return through_row_major(g, u, dx, &upsample_bilinear2d_backward);
  dispatch_floating_and_bfloat16(g.dtype(), "upsample_bilinear2d backward", [&]<class T>() {
    using M = opmath_t<T>;
    const auto hs = linear_taps<M>(u.ih, u.oh, u.align_corners, u.scale_h);
    const auto ws = linear_taps<M>(u.iw, u.ow, u.align_corners, u.scale_w);
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(u, [&](int64_t plane) {
      const T* gp = go + plane * u.oh * u.ow;
      scatter_plane(gi + plane * u.ih * u.iw, u.ih * u.iw, [&](M* dp) {
        for (int64_t oh = 0; oh < u.oh; ++oh) {
          const kern::LinearTaps<M>& h = hs[oh];
          M* r0 = dp + h.i0 * u.iw;
          M* r1 = dp + h.i1 * u.iw;
          for (int64_t ow = 0; ow < u.ow; ++ow) {
            const kern::LinearTaps<M>& w = ws[ow];
            const M v = gp[oh * u.ow + ow];
            r0[w.i0] += h.l0 * w.l0 * v;
            r0[w.i1] += h.l0 * w.l1 * v;
            r1[w.i0] += h.l1 * w.l0 * v;
            r1[w.i1] += h.l1 * w.l1 * v;
          }
        }
      });
    });
  });
}

}  // namespace pneuma::cpu
