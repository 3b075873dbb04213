#include "engine/ops/conv/conv_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "engine/cpu/copy.h"
#include "engine/cpu/fast_path.h"
#include "engine/cpu/parallel.h"
#include "engine/ops/conv/conv_onednn.h"

namespace pneuma::cpu {

namespace {

std::atomic<int64_t> onednn_calls{0};

bool use_onednn(const Tensor& t) {
  return (t.dtype() == DType::Float32 || t.dtype() == DType::BFloat16) && fast_path_enabled();
}

bool counted(bool served) {
  if (served) onednn_calls.fetch_add(1, std::memory_order_relaxed);
  return served;
}

// Calls visit(out_index, in_index) for every output position (oh, ow) of a plane whose tap
// (kh, kw) reads input row ih = oh * stride - padding + kh * dilation (iw likewise) inside the
// input: taps that fall into the zero padding are skipped instead of materialising it. The
// forward and both backward loops below differ only in what they do with the pair.
template <class Visit>
inline void for_each_tap_overlap(const ConvGeometry& g, int64_t kh, int64_t kw, Visit&& visit) {
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    const int64_t ih = oh * g.stride[0] - g.padding[0] + kh * g.dilation[0];
    if (ih < 0 || ih >= g.in_h) continue;
    for (int64_t ow = 0; ow < g.out_w; ++ow) {
      const int64_t iw = ow * g.stride[1] - g.padding[1] + kw * g.dilation[1];
      if (iw >= 0 && iw < g.in_w) visit(oh * g.out_w + ow, ih * g.in_w + iw);
    }
  }
}

template <class T>
void forward_loops(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  const int64_t cg = g.in_per_group(), og = g.out_per_group();
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w, taps = g.kernel_h * g.kernel_w;
  parallel_for(
      g.batch * g.out_channels,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t n = item / g.out_channels, o = item % g.out_channels, group = o / og;
          T* yp = y + item * out_plane;
          for (int64_t i = 0; i < out_plane; ++i) yp[i] = b ? b[o] : T(0);
          for (int64_t ci = 0; ci < cg; ++ci) {
            const T* xp = x + (n * g.in_channels + group * cg + ci) * in_plane;
            const T* wp = w + (o * cg + ci) * taps;
            for (int64_t kh = 0; kh < g.kernel_h; ++kh)
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const T wv = wp[kh * g.kernel_w + kw];
                for_each_tap_overlap(g, kh, kw, [&](int64_t out, int64_t in) { yp[out] += wv * xp[in]; });
              }
          }
        }
      },
      /*grain=*/1);
}

// dL/dx: each (n, c) input plane gathers from the output channels of its group, so
// threads never write to the same plane.
template <class T>
void backward_input_loops(const T* gy, const T* w, T* gx, const ConvGeometry& g) {
  const int64_t cg = g.in_per_group(), og = g.out_per_group();
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w, taps = g.kernel_h * g.kernel_w;
  parallel_for(
      g.batch * g.in_channels,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t n = item / g.in_channels, c = item % g.in_channels;
          const int64_t group = c / cg, ci = c % cg;
          T* gxp = gx + item * in_plane;
          for (int64_t i = 0; i < in_plane; ++i) gxp[i] = T(0);
          for (int64_t oi = 0; oi < og; ++oi) {
            const int64_t o = group * og + oi;
            const T* gyp = gy + (n * g.out_channels + o) * out_plane;
            const T* wp = w + (o * cg + ci) * taps;
            for (int64_t kh = 0; kh < g.kernel_h; ++kh)
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const T wv = wp[kh * g.kernel_w + kw];
                for_each_tap_overlap(g, kh, kw, [&](int64_t out, int64_t in) { gxp[in] += wv * gyp[out]; });
              }
          }
        }
      },
      /*grain=*/1);
}

// dL/dw: one (o, ci) kernel slice per work item, summed over batch and output space.
template <class T>
void backward_weight_loops(const T* x, const T* gy, T* gw, const ConvGeometry& g) {
  const int64_t cg = g.in_per_group(), og = g.out_per_group();
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w, taps = g.kernel_h * g.kernel_w;
  parallel_for(
      g.out_channels * cg,
      [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
          const int64_t o = item / cg, ci = item % cg, c = (o / og) * cg + ci;
          for (int64_t kh = 0; kh < g.kernel_h; ++kh)
            for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
              T acc = 0;
              for (int64_t n = 0; n < g.batch; ++n) {
                const T* xp = x + (n * g.in_channels + c) * in_plane;
                const T* gyp = gy + (n * g.out_channels + o) * out_plane;
                for_each_tap_overlap(g, kh, kw, [&](int64_t out, int64_t in) { acc += gyp[out] * xp[in]; });
              }
              gw[item * taps + kh * g.kernel_w + kw] = acc;
            }
        }
      },
      /*grain=*/1);
}

// bfloat16 sums in float and rounds each channel's total once.
template <class T>
void channel_sum_loops(const T* gy, T* gb, int64_t batch, int64_t channels, int64_t plane) {
  parallel_for(
      channels,
      [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          opmath_t<T> acc = 0;
          for (int64_t n = 0; n < batch; ++n) {
            const T* p = gy + (n * channels + c) * plane;
            for (int64_t i = 0; i < plane; ++i) acc += static_cast<opmath_t<T>>(p[i]);
          }
          gb[c] = static_cast<T>(acc);
        }
      },
      /*grain=*/1);
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// The reference loops take bfloat16 through their float instantiation: the operands widen
// exactly, products and sums are float, and each output rounds once on the way back, as in
// oneDNN's bf16 kernels (f32 accumulation). Summing into bfloat16 would round at every tap.
Tensor widened(const Tensor& t) { return t.defined() ? t.detach().to(DType::Float32) : t; }

Tensor float_like(const Tensor& t) { return t.defined() ? Tensor::empty(t.shape(), DType::Float32) : t; }

void narrow_into(const Tensor& wide, const Tensor& out) {
  if (out.defined()) copy_strided(wide, out);
}

}  // namespace

int64_t onednn_conv_calls() { return onednn_calls.load(); }

namespace reference {

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g) {
  if (x.dtype() == DType::BFloat16) {
    const Tensor wide_y = float_like(y);
    conv2d_forward(widened(x), widened(w), widened(b), wide_y, g);
    return narrow_into(wide_y, y);
  }
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    forward_loops<T>(x.data<T>(), w.data<T>(), data_or_null<T>(b), y.data<T>(), g);
  });
}

void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g) {
  if (gy.dtype() == DType::BFloat16) {
    const Tensor wide_gx = float_like(gx), wide_gw = float_like(gw), wide_gb = float_like(gb);
    conv2d_backward(widened(x), widened(w), widened(gy), wide_gx, wide_gw, wide_gb, g);
    narrow_into(wide_gx, gx);
    narrow_into(wide_gw, gw);
    return narrow_into(wide_gb, gb);
  }
  dispatch_floating(gy.dtype(), "conv2d backward", [&]<class T>() {
    if (gx.defined()) backward_input_loops<T>(gy.data<T>(), w.data<T>(), gx.data<T>(), g);
    if (gw.defined()) backward_weight_loops<T>(x.data<T>(), gy.data<T>(), gw.data<T>(), g);
    if (gb.defined()) channel_sum_loops<T>(gy.data<T>(), gb.data<T>(), g.batch, g.out_channels, g.out_h * g.out_w);
  });
}

}  // namespace reference

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g) {
  if (g.batch == 0) return;
  if (use_onednn(x) && counted(onednn::conv2d_forward(x, w, b, y, g))) return;
  reference::conv2d_forward(x, w, b, y, g);
}

void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g) {
  if (g.batch == 0) {
    // Empty batch: the weight and bias gradients are sums over nothing.
    if (gw.defined()) std::memset(gw.raw_data(), 0, gw.numel() * dtype_size(gw.dtype()));
    if (gb.defined()) std::memset(gb.raw_data(), 0, gb.numel() * dtype_size(gb.dtype()));
    return;
  }
  if (use_onednn(gy) && counted(onednn::conv2d_backward(x, w, gy, gx, gw, gb, g))) return;
  reference::conv2d_backward(x, w, gy, gx, gw, gb, g);
}

void add_channel_bias(const Tensor& y, const Tensor& b) {
  const int64_t batch = y.size(0), channels = y.size(1), plane = y.numel() / std::max<int64_t>(1, batch * channels);
  dispatch_floating_and_bfloat16(y.dtype(), "conv_transpose2d", [&]<class T>() {
    using Math = opmath_t<T>;  // bfloat16 adds in float and rounds once
    T* yp = y.data<T>();
    const T* bp = b.data<T>();
    parallel_for(
        batch * channels,
        [&](int64_t begin, int64_t end) {
          for (int64_t item = begin; item < end; ++item) {
            T* p = yp + item * plane;
            const Math v = static_cast<Math>(bp[item % channels]);
            for (int64_t i = 0; i < plane; ++i) p[i] = static_cast<T>(static_cast<Math>(p[i]) + v);
          }
        },
        /*grain=*/std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, plane)));
  });
}

void channel_sum(const Tensor& gy, const Tensor& gb) {
  const int64_t batch = gy.size(0), channels = gy.size(1), plane = gy.numel() / std::max<int64_t>(1, batch * channels);
  dispatch_floating_and_bfloat16(gy.dtype(), "conv bias gradient", [&]<class T>() {
    channel_sum_loops<T>(gy.data<T>(), gb.data<T>(), batch, channels, plane);
  });
}

}  // namespace pneuma::cpu
