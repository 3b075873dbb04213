#include "engine/ops/upsample/upsample_cpu.h"

#include <algorithm>
#include <vector>

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

template <class T>
std::vector<kern::LinearTaps<T>> linear_taps(int64_t in, int64_t out, bool align_corners, double scale) {
  const T s = kern::area_pixel_scale<T>(in, out, align_corners, scale);
  std::vector<kern::LinearTaps<T>> taps(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) taps[o] = kern::linear_taps<T>(o, in, out, align_corners, s);
  return taps;
}

}  // namespace

void upsample_nearest2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y) {
  const std::vector<int64_t> hs = nearest_indices(u.ih, u.oh, u.scale_h), ws = nearest_indices(u.iw, u.ow, u.scale_w);
  dispatch_floating(x.dtype(), "upsample_nearest2d", [&]<class T>() {
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
  const std::vector<int64_t> hs = nearest_indices(u.ih, u.oh, u.scale_h), ws = nearest_indices(u.iw, u.ow, u.scale_w);
  dispatch_floating(g.dtype(), "upsample_nearest2d backward", [&]<class T>() {
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(u, [&](int64_t plane) {
      T* dp = gi + plane * u.ih * u.iw;
      std::fill(dp, dp + u.ih * u.iw, T(0));
      const T* gp = go + plane * u.oh * u.ow;
      for (int64_t oh = 0; oh < u.oh; ++oh) {
        T* row = dp + hs[oh] * u.iw;
        for (int64_t ow = 0; ow < u.ow; ++ow) row[ws[ow]] += gp[oh * u.ow + ow];
      }
    });
  });
}

void upsample_bilinear2d_forward(const Tensor& x, const Upsample2d& u, const Tensor& y) {
  dispatch_floating(x.dtype(), "upsample_bilinear2d", [&]<class T>() {
    const auto hs = linear_taps<T>(u.ih, u.oh, u.align_corners, u.scale_h);
    const auto ws = linear_taps<T>(u.iw, u.ow, u.align_corners, u.scale_w);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for_planes(u, [&](int64_t plane) {
      const T* xp = in + plane * u.ih * u.iw;
      T* yp = out + plane * u.oh * u.ow;
      for (int64_t oh = 0; oh < u.oh; ++oh) {
        const kern::LinearTaps<T>& h = hs[oh];
        const T* r0 = xp + h.i0 * u.iw;
        const T* r1 = xp + h.i1 * u.iw;
        for (int64_t ow = 0; ow < u.ow; ++ow) {
          const kern::LinearTaps<T>& w = ws[ow];
          // Rows first, then columns: PyTorch's order of operations.
          yp[oh * u.ow + ow] = (r0[w.i0] * w.l0 + r0[w.i1] * w.l1) * h.l0 + (r1[w.i0] * w.l0 + r1[w.i1] * w.l1) * h.l1;
        }
      }
    });
  });
}

void upsample_bilinear2d_backward(const Tensor& g, const Upsample2d& u, const Tensor& dx) {
  dispatch_floating(g.dtype(), "upsample_bilinear2d backward", [&]<class T>() {
    const auto hs = linear_taps<T>(u.ih, u.oh, u.align_corners, u.scale_h);
    const auto ws = linear_taps<T>(u.iw, u.ow, u.align_corners, u.scale_w);
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(u, [&](int64_t plane) {
      T* dp = gi + plane * u.ih * u.iw;
      std::fill(dp, dp + u.ih * u.iw, T(0));
      const T* gp = go + plane * u.oh * u.ow;
      for (int64_t oh = 0; oh < u.oh; ++oh) {
        const kern::LinearTaps<T>& h = hs[oh];
        T* r0 = dp + h.i0 * u.iw;
        T* r1 = dp + h.i1 * u.iw;
        for (int64_t ow = 0; ow < u.ow; ++ow) {
          const kern::LinearTaps<T>& w = ws[ow];
          const T v = gp[oh * u.ow + ow];
          r0[w.i0] += h.l0 * w.l0 * v;
          r0[w.i1] += h.l0 * w.l1 * v;
          r1[w.i0] += h.l1 * w.l0 * v;
          r1[w.i1] += h.l1 * w.l1 * v;
        }
      }
    });
  });
}

}  // namespace pneuma::cpu
