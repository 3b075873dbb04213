#include "engine/ops/conv/conv_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

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

// The loops index contiguous NCHW/OIHW float32 or float64 data. Other problems run them on
// contiguous copies in the loops' dtype, and the results are copied into the caller's outputs:
// channels-last tensors, so that the loops stay the one readable truth for both layouts; and
// bfloat16 through the float instantiation, where the operands widen exactly, products and sums
// are float, and each output rounds once on the way back, as in oneDNN's bf16 kernels (f32
// accumulation). Summing into bfloat16 would round at every tap.
bool loops_take(const ConvGeometry& g, DType dtype) {
  return g.memory_format == MemoryFormat::Contiguous && dtype != DType::BFloat16;
}

DType loop_dtype(DType dtype) { return dtype == DType::BFloat16 ? DType::Float32 : dtype; }

ConvGeometry contiguous_geometry(ConvGeometry g) {
  g.memory_format = MemoryFormat::Contiguous;
  return g;
}

Tensor loop_input(const Tensor& t) { return t.defined() ? t.detach().to(loop_dtype(t.dtype())).contiguous() : t; }

Tensor loop_output(const Tensor& t) { return t.defined() ? Tensor::empty(t.shape(), loop_dtype(t.dtype())) : t; }

void copy_result(const Tensor& loop_result, const Tensor& out) {
  if (out.defined()) copy_strided(loop_result, out);
}

}  // namespace

int64_t onednn_conv_calls() { return onednn_calls.load(); }

namespace reference {

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y, const ConvGeometry& g) {
  if (!loops_take(g, x.dtype())) {
    const Tensor loop_y = loop_output(y);
    conv2d_forward(loop_input(x), loop_input(w), loop_input(b), loop_y, contiguous_geometry(g));
    return copy_result(loop_y, y);
  }
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    forward_loops<T>(x.data<T>(), w.data<T>(), data_or_null<T>(b), y.data<T>(), g);
  });
}

void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeometry& g) {
  if (!loops_take(g, gy.dtype())) {
    const Tensor loop_gx = loop_output(gx), loop_gw = loop_output(gw), loop_gb = loop_output(gb);
    conv2d_backward(loop_input(x), loop_input(w), loop_input(gy), loop_gx, loop_gw, loop_gb, contiguous_geometry(g));
    copy_result(loop_gx, gx);
    copy_result(loop_gw, gw);
    return copy_result(loop_gb, gb);
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

namespace {

// How a conv's y or gy [N, C, H, W] lies in memory, for the flat loops of the bias add and sum:
// NCHW is batch * channels planes of `plane` elements, channels-last batch * plane rows of
// `channels` elements. A tensor that is both (C or H*W is 1) is taken as NCHW, the same memory.
struct ChannelLayout {
  int64_t batch, channels, plane;
  bool rows;  // channels-last
};

ChannelLayout channel_layout(const Tensor& t, const char* op) {
  PNEUMA_CHECK(t.dim() == 4 && (t.is_contiguous() || t.is_contiguous(MemoryFormat::ChannelsLast)), op,
               ": expected a contiguous or channels-last 4-d tensor, got ", t.str(), " with strides ",
               shape_str(t.strides()));
  return {t.size(0), t.size(1), t.size(2) * t.size(3), !t.is_contiguous()};
}

}  // namespace

void add_channel_bias(const Tensor& y, const Tensor& b) {
  const ChannelLayout l = channel_layout(y, "conv_transpose2d bias");
  dispatch_floating_and_bfloat16(y.dtype(), "conv_transpose2d", [&]<class T>() {
    using Math = opmath_t<T>;  // bfloat16 adds in float and rounds once
    T* yp = y.data<T>();
    const T* bp = b.data<T>();
    const auto add = [](T& out, T bias) { out = static_cast<T>(static_cast<Math>(out) + static_cast<Math>(bias)); };
    if (l.rows) {
      parallel_for(
          l.batch * l.plane,
          [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row)
              for (int64_t c = 0; c < l.channels; ++c) add(yp[row * l.channels + c], bp[c]);
          },
          /*grain=*/std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, l.channels)));
      return;
    }
    parallel_for(
        l.batch * l.channels,
        [&](int64_t begin, int64_t end) {
          for (int64_t item = begin; item < end; ++item) {
            T* p = yp + item * l.plane;
            const T bias = bp[item % l.channels];
            for (int64_t i = 0; i < l.plane; ++i) add(p[i], bias);
          }
        },
        /*grain=*/std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, l.plane)));
  });
}

void channel_sum(const Tensor& gy, const Tensor& gb) {
  const ChannelLayout l = channel_layout(gy, "conv bias gradient");
  dispatch_floating_and_bfloat16(gy.dtype(), "conv bias gradient", [&]<class T>() {
    if (!l.rows) return channel_sum_loops<T>(gy.data<T>(), gb.data<T>(), l.batch, l.channels, l.plane);
    // Channels-last: each thread sums a range of channels down all rows, reading each row's
    // slice of its range contiguously.
    const T* gyp = gy.data<T>();
    T* gbp = gb.data<T>();
    const int64_t rows = l.batch * l.plane;
    parallel_for(
        l.channels,
        [&](int64_t begin, int64_t end) {
          std::vector<opmath_t<T>> acc(end - begin, 0);
          for (int64_t row = 0; row < rows; ++row) {
            const T* p = gyp + row * l.channels;
            for (int64_t c = begin; c < end; ++c) acc[c - begin] += static_cast<opmath_t<T>>(p[c]);
          }
          for (int64_t c = begin; c < end; ++c) gbp[c] = static_cast<T>(acc[c - begin]);
        },
        /*grain=*/std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, rows)));
  });
}

}  // namespace pneuma::cpu
