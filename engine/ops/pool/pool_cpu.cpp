#include "engine/ops/pool/pool_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "engine/cpu/copy.h"
#include "engine/cpu/parallel.h"

namespace pneuma::cpu {

using kern::Pool2d;

namespace {

// Planes are independent: forward and backward both parallelize over them.
template <class Fn>
void for_planes(const Pool2d& p, int64_t work_per_plane, Fn&& fn) {
  parallel_for(p.planes(), [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) fn(plane);
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(work_per_plane, 1)));
}

// The input-gradient plane a backward loop scatters into, zeroed: dx's own plane for float and
// double; for bfloat16 a float plane (a bfloat16 sum would round at every add) that finish()
// rounds into dx once, as the CUDA kernels round their float sums.
template <class T>
class GradPlane {
 public:
  using Math = opmath_t<T>;
  GradPlane(T* out, int64_t size) : out_(out), size_(size) {
    if constexpr (std::is_same_v<T, Math>) {
      std::fill(out, out + size, T(0));
      data_ = out;
    } else {
      wide_.assign(static_cast<size_t>(size), Math(0));
      data_ = wide_.data();
    }
  }
  Math* data() const { return data_; }
  void finish() {
    if constexpr (!std::is_same_v<T, Math>)
      for (int64_t i = 0; i < size_; ++i) out_[i] = static_cast<T>(wide_[i]);
  }

 private:
  T* out_;
  int64_t size_;
  Math* data_ = nullptr;
  std::vector<Math> wide_;
};

// The loops walk row-major NCHW planes. A channels-last problem (float64, or what oneDNN refuses)
// runs them on row-major copies of its inputs (detached data: contiguous() records nothing); the
// results are copied into its outputs.
Tensor row_major(const Tensor& t) { return t.contiguous(); }
Tensor row_major_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
Pool2d row_major(Pool2d p) {
  p.channels_last = false;
  return p;
}

}  // namespace

void max_pool2d_forward(const Tensor& x, const Pool2d& p, const Tensor& y, const Tensor& indices) {
  if (p.channels_last) {
    const Tensor y_rows = row_major_like(y), indices_rows = row_major_like(indices);
    max_pool2d_forward(row_major(x), row_major(p), y_rows, indices_rows);
    copy_strided(y_rows, y);
    copy_strided(indices_rows, indices);
    return;
  }
  dispatch_floating_and_bfloat16(x.dtype(), "max_pool2d", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    int64_t* idx = indices.data<int64_t>();
    for_planes(p, p.oh * p.ow * p.kh * p.kw, [&](int64_t plane) {
      const T* xp = in + plane * p.ih * p.iw;
      T* yp = out + plane * p.oh * p.ow;
      int64_t* ip = idx + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const kern::MaxWindow hw = kern::max_window(oh, p.ih, p.kh, p.sh, p.ph, p.dh);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const kern::MaxWindow ww = kern::max_window(ow, p.iw, p.kw, p.sw, p.pw, p.dw);
          // As PyTorch: the first maximum wins ties, and a NaN wins over everything.
          int64_t best = hw.start * p.iw + ww.start;
          Math best_value = -std::numeric_limits<Math>::infinity();
          for (int64_t h = hw.start; h < hw.end; h += p.dh)
            for (int64_t w = ww.start; w < ww.end; w += p.dw) {
              const Math v = static_cast<Math>(xp[h * p.iw + w]);
              if (v > best_value || std::isnan(v)) {
                best_value = v;
                best = h * p.iw + w;
              }
            }
          yp[oh * p.ow + ow] = static_cast<T>(best_value);
          ip[oh * p.ow + ow] = best;
        }
      }
    });
  });
}

void max_pool2d_backward(const Tensor& g, const Tensor& indices, const Pool2d& p, const Tensor& dx) {
  if (p.channels_last) {
    const Tensor dx_rows = row_major_like(dx);
    max_pool2d_backward(row_major(g), row_major(indices), row_major(p), dx_rows);
    copy_strided(dx_rows, dx);
    return;
  }
  dispatch_floating_and_bfloat16(g.dtype(), "max_pool2d backward", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* go = g.data<T>();
    const int64_t* idx = indices.data<int64_t>();
    T* gi = dx.data<T>();
    for_planes(p, p.ih * p.iw, [&](int64_t plane) {
      GradPlane<T> grad(gi + plane * p.ih * p.iw, p.ih * p.iw);
      Math* dp = grad.data();
      const T* gp = go + plane * p.oh * p.ow;
      const int64_t* ip = idx + plane * p.oh * p.ow;
      for (int64_t o = 0; o < p.oh * p.ow; ++o) dp[ip[o]] += static_cast<Math>(gp[o]);
      grad.finish();
    });
  });
}

namespace {

struct AvgTerms {
  kern::AvgWindow h, w;
  double divisor;
};

AvgTerms avg_terms(const Pool2d& p, const AvgOptions& o, int64_t oh, int64_t ow) {
  const kern::AvgWindow h = kern::avg_window(oh, p.ih, p.kh, p.sh, p.ph);
  const kern::AvgWindow w = kern::avg_window(ow, p.iw, p.kw, p.sw, p.pw);
  return {h, w, kern::avg_divisor(h, w, o.count_include_pad, o.divisor_override.has_value(), o.divisor_override.value_or(0))};
}

}  // namespace

void avg_pool2d_forward(const Tensor& x, const Pool2d& p, const AvgOptions& o, const Tensor& y) {
  if (p.channels_last) {
    const Tensor y_rows = row_major_like(y);
    avg_pool2d_forward(row_major(x), row_major(p), o, y_rows);
    copy_strided(y_rows, y);
    return;
  }
  dispatch_floating_and_bfloat16(x.dtype(), "avg_pool2d", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for_planes(p, p.oh * p.ow * p.kh * p.kw, [&](int64_t plane) {
      const T* xp = in + plane * p.ih * p.iw;
      T* yp = out + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh)
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AvgTerms t = avg_terms(p, o, oh, ow);
          Math sum = 0;
          for (int64_t h = t.h.start; h < t.h.end; ++h)
            for (int64_t w = t.w.start; w < t.w.end; ++w) sum += static_cast<Math>(xp[h * p.iw + w]);
          yp[oh * p.ow + ow] = static_cast<T>(sum / static_cast<Math>(t.divisor));
        }
    });
  });
}

void avg_pool2d_backward(const Tensor& g, const Pool2d& p, const AvgOptions& o, const Tensor& dx) {
  if (p.channels_last) {
    const Tensor dx_rows = row_major_like(dx);
    avg_pool2d_backward(row_major(g), row_major(p), o, dx_rows);
    copy_strided(dx_rows, dx);
    return;
  }
  dispatch_floating_and_bfloat16(g.dtype(), "avg_pool2d backward", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(p, p.oh * p.ow * p.kh * p.kw, [&](int64_t plane) {
      GradPlane<T> grad(gi + plane * p.ih * p.iw, p.ih * p.iw);
      Math* dp = grad.data();
      const T* gp = go + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh)
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const AvgTerms t = avg_terms(p, o, oh, ow);
          const Math share = static_cast<Math>(gp[oh * p.ow + ow]) / static_cast<Math>(t.divisor);
          for (int64_t h = t.h.start; h < t.h.end; ++h)
            for (int64_t w = t.w.start; w < t.w.end; ++w) dp[h * p.iw + w] += share;
        }
      grad.finish();
    });
  });
}

void adaptive_avg_pool2d_forward(const Tensor& x, const Pool2d& p, const Tensor& y) {
  if (p.channels_last) {
    const Tensor y_rows = row_major_like(y);
    adaptive_avg_pool2d_forward(row_major(x), row_major(p), y_rows);
    copy_strided(y_rows, y);
    return;
  }
  dispatch_floating_and_bfloat16(x.dtype(), "adaptive_avg_pool2d", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for_planes(p, p.ih * p.iw, [&](int64_t plane) {
      const T* xp = in + plane * p.ih * p.iw;
      T* yp = out + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const int64_t h0 = kern::adaptive_start(oh, p.oh, p.ih), h1 = kern::adaptive_end(oh, p.oh, p.ih);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const int64_t w0 = kern::adaptive_start(ow, p.ow, p.iw), w1 = kern::adaptive_end(ow, p.ow, p.iw);
          Math sum = 0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += static_cast<Math>(xp[h * p.iw + w]);
          yp[oh * p.ow + ow] = static_cast<T>(sum / static_cast<Math>((h1 - h0) * (w1 - w0)));
        }
      }
    });
  });
}

void adaptive_avg_pool2d_backward(const Tensor& g, const Pool2d& p, const Tensor& dx) {
  if (p.channels_last) {
    const Tensor dx_rows = row_major_like(dx);
    adaptive_avg_pool2d_backward(row_major(g), row_major(p), dx_rows);
    copy_strided(dx_rows, dx);
    return;
  }
  dispatch_floating_and_bfloat16(g.dtype(), "adaptive_avg_pool2d backward", [&]<class T>() {
    using Math = opmath_t<T>;
    const T* go = g.data<T>();
    T* gi = dx.data<T>();
    for_planes(p, p.ih * p.iw, [&](int64_t plane) {
      GradPlane<T> grad(gi + plane * p.ih * p.iw, p.ih * p.iw);
      Math* dp = grad.data();
      const T* gp = go + plane * p.oh * p.ow;
      for (int64_t oh = 0; oh < p.oh; ++oh) {
        const int64_t h0 = kern::adaptive_start(oh, p.oh, p.ih), h1 = kern::adaptive_end(oh, p.oh, p.ih);
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          const int64_t w0 = kern::adaptive_start(ow, p.ow, p.iw), w1 = kern::adaptive_end(ow, p.ow, p.iw);
          const Math share = static_cast<Math>(gp[oh * p.ow + ow]) / static_cast<Math>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) dp[h * p.iw + w] += share;
        }
      }
      grad.finish();
    });
  });
}

}  // namespace pneuma::cpu
