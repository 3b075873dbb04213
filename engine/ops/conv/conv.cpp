#include "engine/ops/conv/conv.h"

#include <sstream>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/autocast.h"
#include "engine/ops/checks.h"
#include "engine/ops/conv/conv_cpu.h"
#include "engine/ops/conv/conv_cuda.h"

namespace pneuma {

using ops::ConvGeometry;

namespace {

// The convolution kernels of one device: the CPU's (oneDNN / reference loops) or cuDNN's, with
// the same signatures.
struct ConvKernels {
  decltype(&cpu::conv2d_forward) forward;
  decltype(&cpu::conv2d_backward) backward;
  decltype(&cpu::add_channel_bias) add_channel_bias;
  decltype(&cpu::channel_sum) channel_sum;
};

const ConvKernels& kernels_for(const Tensor& t) {
  static const ConvKernels cpu_kernels{&cpu::conv2d_forward, &cpu::conv2d_backward, &cpu::add_channel_bias,
                                       &cpu::channel_sum};
  static const ConvKernels cuda_kernels{&cuda::conv2d_forward, &cuda::conv2d_backward, &cuda::add_channel_bias,
                                        &cuda::channel_sum};
  return t.device().is_cuda() ? cuda_kernels : cpu_kernels;
}

std::string pair_str(const std::array<int64_t, 2>& v) {
  std::ostringstream out;
  out << "(" << v[0] << ", " << v[1] << ")";
  return out.str();
}

// Checks shared by conv2d and conv_transpose2d; x is already 4-d.
void check_common(const char* op, const char* weight_layout, const Tensor& x, const Tensor& w, const Tensor& b,
                  const std::array<int64_t, 2>& stride, const std::array<int64_t, 2>& padding,
                  const std::array<int64_t, 2>& dilation, int64_t groups) {
  ops::check_defined(op, w, "weight");
  ops::check_floating(op, x);
  ops::check_same_dtype(op, x, w);
  ops::check_same_device(op, x, w);
  if (b.defined()) {
    ops::check_same_dtype(op, x, b);
    ops::check_same_device(op, x, b);
  }
  PNEUMA_CHECK(w.dim() == 4, op, ": expected a 4-d weight ", weight_layout, ", got ", w.str());
  PNEUMA_CHECK(groups > 0, op, ": groups must be positive, got ", groups);
  PNEUMA_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride must be positive, got ", pair_str(stride));
  PNEUMA_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ", pair_str(padding));
  PNEUMA_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be positive, got ", pair_str(dilation));
  PNEUMA_CHECK(w.size(2) > 0 && w.size(3) > 0, op, ": weight ", w.str(), " has an empty kernel");
}

void check_bias(const char* op, const Tensor& b, int64_t out_channels) {
  PNEUMA_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == out_channels), op, ": bias ", b.str(),
               " must be 1-d with ", out_channels, " elements (one per output channel)");
}

ConvGeometry conv_geometry(const Tensor& x, const Tensor& w, const Tensor& b, std::array<int64_t, 2> stride,
                           std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  const char* op = "conv2d";
  check_common(op, "[out_channels, in_channels/groups, kH, kW]", x, w, b, stride, padding, dilation, groups);
  ConvGeometry g;
  g.batch = x.size(0);
  g.in_channels = x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_channels = w.size(0);
  g.kernel_h = w.size(2);
  g.kernel_w = w.size(3);
  g.stride = stride;
  g.padding = padding;
  g.dilation = dilation;
  g.groups = groups;
  PNEUMA_CHECK(g.in_channels == w.size(1) * groups, op, ": input ", x.str(), " has ", g.in_channels,
               " channels but weight ", w.str(), " expects ", w.size(1) * groups, " (groups ", groups, ")");
  PNEUMA_CHECK(g.out_channels % groups == 0, op, ": weight ", w.str(), " has ", g.out_channels,
               " output channels, which groups ", groups, " does not divide");
  check_bias(op, b, g.out_channels);
  const int64_t span_h = dilation[0] * (g.kernel_h - 1) + 1, span_w = dilation[1] * (g.kernel_w - 1) + 1;
  PNEUMA_CHECK(g.in_h + 2 * padding[0] >= span_h && g.in_w + 2 * padding[1] >= span_w, op, ": input ", x.str(),
               " padded by ", pair_str(padding), " is ", g.in_h + 2 * padding[0], "x", g.in_w + 2 * padding[1],
               ", smaller than the dilated kernel ", span_h, "x", span_w, " of weight ", w.str(), " (dilation ",
               pair_str(dilation), ")");
  g.out_h = (g.in_h + 2 * padding[0] - span_h) / stride[0] + 1;
  g.out_w = (g.in_w + 2 * padding[1] - span_w) / stride[1] + 1;
  return g;
}

// conv_transpose2d(x) is the input-gradient of conv2d: its geometry is that conv's,
// with the transposed conv's output as the conv input and x as the conv output.
ConvGeometry conv_transpose_geometry(const Tensor& x, const Tensor& w, const Tensor& b,
                                     std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                     std::array<int64_t, 2> output_padding, int64_t groups,
                                     std::array<int64_t, 2> dilation) {
  const char* op = "conv_transpose2d";
  check_common(op, "[in_channels, out_channels/groups, kH, kW]", x, w, b, stride, padding, dilation, groups);
  for (int i = 0; i < 2; ++i)
    PNEUMA_CHECK(output_padding[i] >= 0 && (output_padding[i] < stride[i] || output_padding[i] < dilation[i]),
                 op, ": output_padding ", pair_str(output_padding), " must be non-negative and smaller than stride ",
                 pair_str(stride), " or dilation ", pair_str(dilation));
  PNEUMA_CHECK(x.size(1) == w.size(0), op, ": input ", x.str(), " has ", x.size(1), " channels but weight ",
               w.str(), " expects ", w.size(0), " (weight is [in_channels, out_channels/groups, kH, kW])");
  PNEUMA_CHECK(w.size(0) % groups == 0, op, ": weight ", w.str(), " has ", w.size(0),
               " input channels, which groups ", groups, " does not divide");
  ConvGeometry g;
  g.batch = x.size(0);
  g.out_channels = x.size(1);
  g.out_h = x.size(2);
  g.out_w = x.size(3);
  g.in_channels = w.size(1) * groups;
  g.kernel_h = w.size(2);
  g.kernel_w = w.size(3);
  g.stride = stride;
  g.padding = padding;
  g.dilation = dilation;
  g.groups = groups;
  check_bias(op, b, g.in_channels);
  g.in_h = (g.out_h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (g.kernel_h - 1) + output_padding[0] + 1;
  g.in_w = (g.out_w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (g.kernel_w - 1) + output_padding[1] + 1;
  PNEUMA_CHECK(g.in_h > 0 && g.in_w > 0, op, ": input ", x.str(), " with weight ", w.str(), ", stride ",
               pair_str(stride), ", padding ", pair_str(padding), ", output_padding ", pair_str(output_padding),
               " and dilation ", pair_str(dilation), " gives an empty output ", g.in_h, "x", g.in_w);
  return g;
}

Shape input_shape(const ConvGeometry& g) { return {g.batch, g.in_channels, g.in_h, g.in_w}; }
Shape output_shape(const ConvGeometry& g) { return {g.batch, g.out_channels, g.out_h, g.out_w}; }

// Uninitialized, with like's dtype and device, laid out in format.
Tensor empty_like_shape(const Tensor& like, const Shape& shape, MemoryFormat format = MemoryFormat::Contiguous) {
  return Tensor::empty(shape, like.dtype(), like.device(), format);
}

// The layout a convolution runs in, torch 1.13's rule (mkldnn_conv_use_channels_last and
// thnn_conv_use_channels_last on the CPU, cudnn_conv_suggest_memory_format on CUDA):
// channels-last when the 4-d input or the weight suggests it, so a model converted with
// module.to(ChannelsLast) turns an NCHW batch channels-last at its first conv. cuDNN's rule
// keeps float64 in NCHW (its NHWC kernels are for float and narrower types).
MemoryFormat conv_memory_format(const Tensor& x4, const Tensor& w) {
  if (x4.device().is_cuda() && x4.dtype() == DType::Float64) return MemoryFormat::Contiguous;
  const bool channels_last = x4.suggest_memory_format() == MemoryFormat::ChannelsLast ||
                             w.suggest_memory_format() == MemoryFormat::ChannelsLast;
  return channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

class Conv2dBackward final : public autograd::Node {
 public:
  Conv2dBackward(ConvGeometry g, Tensor x, Tensor w, bool need_x, bool need_w, bool need_b)
      : g_(g), x_(std::move(x)), w_(std::move(w)), need_x_(need_x), need_w_(need_w), need_b_(need_b) {}
  const char* name() const override { return "conv2d"; }
  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor gy = grad.contiguous(g_.memory_format);
    // gw takes the layout of the weight the kernels ran with (g_.memory_format too).
    Tensor gx = need_x_ ? empty_like_shape(gy, input_shape(g_), g_.memory_format) : Tensor();
    Tensor gw = need_w_ ? empty_like_shape(gy, input_shapes[1], g_.memory_format) : Tensor();
    Tensor gb = need_b_ ? empty_like_shape(gy, {g_.out_channels}) : Tensor();
    kernels_for(gy).backward(x_, w_, gy, gx, gw, gb, g_);
    return {gx, gw, gb};
  }
  void release_saved() override {
    x_ = Tensor();
    w_ = Tensor();
  }

 private:
  ConvGeometry g_;
  Tensor x_, w_;
  bool need_x_, need_w_, need_b_;
};

class ConvTranspose2dBackward final : public autograd::Node {
 public:
  ConvTranspose2dBackward(ConvGeometry g, Tensor x, Tensor w, bool need_x, bool need_w, bool need_b)
      : g_(g), x_(std::move(x)), w_(std::move(w)), need_x_(need_x), need_w_(need_w), need_b_(need_b) {}
  const char* name() const override { return "conv_transpose2d"; }
  std::vector<Tensor> apply(const Tensor& grad) override {
    // grad has the conv geometry's input shape; the transposed conv's input x is
    // that conv's output, so the roles of forward and backward swap.
    const Tensor gy = grad.contiguous(g_.memory_format);
    Tensor gx, gw, gb;
    if (need_x_) {
      gx = empty_like_shape(gy, output_shape(g_), g_.memory_format);
      kernels_for(gy).forward(gy, w_, Tensor(), gx, g_);
    }
    if (need_w_) {
      gw = empty_like_shape(gy, input_shapes[1], g_.memory_format);
      kernels_for(gy).backward(gy, Tensor(), x_, Tensor(), gw, Tensor(), g_);
    }
    if (need_b_) {
      gb = empty_like_shape(gy, {g_.in_channels});
      kernels_for(gy).channel_sum(gy, gb);
    }
    return {gx, gw, gb};
  }
  void release_saved() override {
    x_ = Tensor();
    w_ = Tensor();
  }

 private:
  ConvGeometry g_;
  Tensor x_, w_;
  bool need_x_, need_w_, need_b_;
};

// PyTorch accepts unbatched CHW input and returns CHW; a batch of one does the work.
Tensor batched(const char* op, const Tensor& input) {
  ops::check_defined(op, input);
  PNEUMA_CHECK(input.dim() == 3 || input.dim() == 4, op,
               ": expected a 3-d (unbatched CHW) or 4-d (batched NCHW) input, got ", input.str());
  return input.dim() == 3 ? input.unsqueeze(0) : input;
}

}  // namespace

Tensor conv2d(const Tensor& input_in, const Tensor& weight_in, const Tensor& bias_in, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  const Tensor input = autocast::to_lower_precision(input_in);
  const Tensor weight = autocast::to_lower_precision(weight_in);
  const Tensor bias = autocast::to_lower_precision(bias_in);
  profiler::Scope profile_scope("conv", "conv2d");
  const Tensor x4 = batched("conv2d", input);
  ConvGeometry g = conv_geometry(x4, weight, bias, stride, padding, dilation, groups);
  g.memory_format = conv_memory_format(x4, weight);
  const Tensor x = x4.contiguous(g.memory_format), w = weight.contiguous(g.memory_format);
  const Tensor b = bias.defined() ? bias.contiguous() : bias;
  Tensor y = empty_like_shape(x, output_shape(g), g.memory_format);
  kernels_for(x).forward(x, w, b, y, g);
  if (autograd::needs_grad({&x, &w, &b})) {
    const bool need_x = x.requires_grad(), need_w = w.requires_grad(), need_b = b.defined() && b.requires_grad();
    auto node = std::make_shared<Conv2dBackward>(g, need_w ? autograd::save(x) : Tensor(),
                                                 need_x ? autograd::save(w) : Tensor(), need_x, need_w, need_b);
    autograd::record(node, {x, w, b}, y);
  }
  return input.dim() == 3 ? y.squeeze(0) : y;
}

Tensor conv_transpose2d(const Tensor& input_in, const Tensor& weight_in, const Tensor& bias_in, std::array<int64_t, 2> stride,
                        std::array<int64_t, 2> padding, std::array<int64_t, 2> output_padding, int64_t groups,
                        std::array<int64_t, 2> dilation) {
  const Tensor input = autocast::to_lower_precision(input_in);
  const Tensor weight = autocast::to_lower_precision(weight_in);
  const Tensor bias = autocast::to_lower_precision(bias_in);
  profiler::Scope profile_scope("conv", "conv_transpose2d");
  const Tensor x4 = batched("conv_transpose2d", input);
  ConvGeometry g = conv_transpose_geometry(x4, weight, bias, stride, padding, output_padding, groups, dilation);
  // torch 1.13's CPU conv_transpose2d (its slow path) returns NCHW whatever the input; cuDNN's and
  // later torch CPU versions' follow the conv2d rule, which this one follows on both devices.
  g.memory_format = conv_memory_format(x4, weight);
  const Tensor x = x4.contiguous(g.memory_format), w = weight.contiguous(g.memory_format);
  const Tensor b = bias.defined() ? bias.contiguous() : bias;
  Tensor y = empty_like_shape(x, input_shape(g), g.memory_format);
  kernels_for(x).backward(Tensor(), w, x, y, Tensor(), Tensor(), g);
  if (b.defined()) kernels_for(x).add_channel_bias(y, b);
  if (autograd::needs_grad({&x, &w, &b})) {
    const bool need_x = x.requires_grad(), need_w = w.requires_grad(), need_b = b.defined() && b.requires_grad();
    auto node = std::make_shared<ConvTranspose2dBackward>(g, need_w ? autograd::save(x) : Tensor(),
                                                          need_x ? autograd::save(w) : Tensor(), need_x, need_w,
                                                          need_b);
    autograd::record(node, {x, w, b}, y);
  }
  return input.dim() == 3 ? y.squeeze(0) : y;
}

}  // namespace pneuma
