#include "engine/ops/pool/pool.h"

#include <optional>
#include <string>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/cpu/fast_path.h"
#include "engine/ops/checks.h"
#include "engine/ops/pool/pool_cpu.h"
#include "engine/ops/pool/pool_cuda.h"
#include "engine/ops/pool/pool_onednn.h"

namespace pneuma {

using kern::Pool2d;

namespace {

std::string pair_str(std::array<int64_t, 2> a) { return "[" + std::to_string(a[0]) + ", " + std::to_string(a[1]) + "]"; }

// The input as [N, C, H, W] planes (N = 1 for an unbatched [C, H, W] input), in the layout the op
// computes in and returns: channels-last when a 4-d input suggests it, as PyTorch's pooling keeps
// the input's suggest_memory_format() for the output and the input gradient.
Pool2d planes_of(const char* op, const Tensor& input) {
  ops::check_defined(op, input);
  ops::check_floating(op, input);
  PNEUMA_CHECK(input.dim() == 3 || input.dim() == 4, op, ": expected a 3-d [C, H, W] or 4-d [N, C, H, W] input, got ",
               input.str());
  const bool batched = input.dim() == 4;
  Pool2d p;
  p.N = batched ? input.size(0) : 1;
  p.C = input.size(batched ? 1 : 0);
  p.ih = input.size(batched ? 2 : 1);
  p.iw = input.size(batched ? 3 : 2);
  p.channels_last = batched && input.suggest_memory_format() == MemoryFormat::ChannelsLast;
  PNEUMA_CHECK(p.C > 0 && p.ih > 0 && p.iw > 0, op, ": expected non-zero channels, height and width, got input ",
               input.str());
  return p;
}

Shape output_shape(const Tensor& input, const Pool2d& p) {
  return input.dim() == 4 ? Shape{p.N, p.C, p.oh, p.ow} : Shape{p.C, p.oh, p.ow};
}

MemoryFormat layout(const Pool2d& p) { return p.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous; }

// A tensor of `shape` in p's layout: outputs, indices and input gradients.
Tensor empty_in_layout(const Shape& shape, DType dtype, Device device, const Pool2d& p) {
  return Tensor::empty(shape, dtype, device, layout(p));
}

Pool2d window_geometry(const char* op, const Tensor& input, std::array<int64_t, 2> kernel,
                       std::array<int64_t, 2> stride, std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation,
                       bool ceil_mode) {
  Pool2d p = planes_of(op, input);
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  PNEUMA_CHECK(kernel[0] > 0 && kernel[1] > 0, op, ": kernel_size must be positive, got ", pair_str(kernel));
  PNEUMA_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride must be positive (or {0, 0} for kernel_size), got ",
               pair_str(stride));
  PNEUMA_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be positive, got ", pair_str(dilation));
  PNEUMA_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ", pair_str(padding));
  PNEUMA_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, op, ": padding ", pair_str(padding),
               " should be at most half of kernel_size ", pair_str(kernel));
  p.kh = kernel[0], p.kw = kernel[1], p.sh = stride[0], p.sw = stride[1];
  p.ph = padding[0], p.pw = padding[1], p.dh = dilation[0], p.dw = dilation[1];
  p.oh = kern::pool_output_size(p.ih, p.kh, p.ph, p.sh, p.dh, ceil_mode);
  p.ow = kern::pool_output_size(p.iw, p.kw, p.pw, p.sw, p.dw, ceil_mode);
  PNEUMA_CHECK(p.oh >= 1 && p.ow >= 1, op, ": input ", input.str(), " is too small for kernel_size ", pair_str(kernel),
               " with padding ", pair_str(padding), " and dilation ", pair_str(dilation), ": the output would be ",
               p.oh, " x ", p.ow);
  return p;
}

// oneDNN pools float32 and bfloat16 (f32 accumulation inside).
bool fast_onednn(const Tensor& x) {
  return x.device().is_cpu() && (x.dtype() == DType::Float32 || x.dtype() == DType::BFloat16) && x.numel() > 0 &&
         cpu::fast_path_enabled();
}

// Routes gradients through what the forward saved: PyTorch's indices (reference) or
// oneDNN's workspace (fast path; only oneDNN can read it).
class MaxPool2dBackward final : public autograd::Node {
 public:
  MaxPool2dBackward(Pool2d p, Tensor saved, bool fast) : p_(p), saved_(std::move(saved)), fast_(fast) {}
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor g = grad.contiguous(layout(p_));
    Tensor dx = empty_in_layout(input_shapes[0], g.dtype(), g.device(), p_);
    if (g.device().is_cuda()) cuda::max_pool2d_backward(g, saved_, p_, dx);
    else if (fast_) cpu::max_pool2d_backward_onednn(g, saved_, p_, dx);
    else cpu::max_pool2d_backward(g, saved_, p_, dx);
    return {dx};
  }
  void release_saved() override { saved_ = Tensor(); }

 private:
  Pool2d p_;
  Tensor saved_;
  bool fast_;
};

std::pair<Tensor, Tensor> max_pool(const Tensor& input, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                                   std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, bool ceil_mode,
                                   bool want_indices) {
  const char* op = want_indices ? "max_pool2d_with_indices" : "max_pool2d";
  profiler::Scope profile_scope("pool", op);
  const Pool2d p = window_geometry(op, input, kernel, stride, padding, dilation, ceil_mode);
  const Tensor x = input.detach().contiguous(layout(p));
  const bool record = autograd::needs_grad({&input});
  Tensor y = empty_in_layout(output_shape(input, p), input.dtype(), input.device(), p);
  // oneDNN cannot give PyTorch's indices, so the fast path serves max_pool2d only.
  if (!want_indices && fast_onednn(x) && cpu::max_pool2d_onednn_supported(p, record, x.dtype())) {
    Tensor workspace = cpu::max_pool2d_forward_onednn(x, p, y, record);
    if (record) autograd::record(std::make_shared<MaxPool2dBackward>(p, std::move(workspace), true), {input}, y);
    return {y, Tensor()};
  }
  Tensor indices = empty_in_layout(y.shape(), DType::Int64, input.device(), p);
  if (x.device().is_cuda()) cuda::max_pool2d_forward(x, p, y, indices);
  else cpu::max_pool2d_forward(x, p, y, indices);
  if (record) autograd::record(std::make_shared<MaxPool2dBackward>(p, autograd::save(indices), false), {input}, y);
  return {y, indices};
}

class AvgPool2dBackward final : public autograd::Node {
 public:
  AvgPool2dBackward(Pool2d p, cpu::AvgOptions options, bool fast) : p_(p), options_(options), fast_(fast) {}
  const char* name() const override { return "avg_pool2d"; }
  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor g = grad.contiguous(layout(p_));
    Tensor dx = empty_in_layout(input_shapes[0], g.dtype(), g.device(), p_);
    if (g.device().is_cuda()) cuda::avg_pool2d_backward(g, p_, options_, dx);
    else if (fast_) cpu::avg_pool2d_backward_onednn(g, p_, options_, dx);
    else cpu::avg_pool2d_backward(g, p_, options_, dx);
    return {dx};
  }

 private:
  Pool2d p_;
  cpu::AvgOptions options_;
  bool fast_;
};

// Adaptive bins over input sizes that are multiples of the output's (ResNet's global pool) are equal
// windows: kernel = stride = in / out, no padding. oneDNN pools those as average pooling, as
// PyTorch's mkldnn path does, in either layout.
std::optional<Pool2d> adaptive_as_windows(const Pool2d& p) {
  if (p.ih % p.oh != 0 || p.iw % p.ow != 0) return std::nullopt;
  Pool2d w = p;
  w.kh = w.sh = p.ih / p.oh;
  w.kw = w.sw = p.iw / p.ow;
  w.ph = w.pw = 0;
  w.dh = w.dw = 1;
  return w;
}

class AdaptiveAvgPool2dBackward final : public autograd::Node {
 public:
  // onednn_windows: the windows the forward gave oneDNN, when it did.
  AdaptiveAvgPool2dBackward(Pool2d p, std::optional<Pool2d> onednn_windows) : p_(p), onednn_windows_(onednn_windows) {}
  const char* name() const override { return "adaptive_avg_pool2d"; }
  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor g = grad.contiguous(layout(p_));
    Tensor dx = empty_in_layout(input_shapes[0], g.dtype(), g.device(), p_);
    if (g.device().is_cuda()) cuda::adaptive_avg_pool2d_backward(g, p_, dx);
    else if (onednn_windows_) cpu::avg_pool2d_backward_onednn(g, *onednn_windows_, {}, dx);
    else cpu::adaptive_avg_pool2d_backward(g, p_, dx);
    return {dx};
  }

 private:
  Pool2d p_;
  std::optional<Pool2d> onednn_windows_;
};

}  // namespace

Tensor max_pool2d(const Tensor& input, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, bool ceil_mode) {
  return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, false).first;
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& input, std::array<int64_t, 2> kernel_size,
                                                  std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                                  std::array<int64_t, 2> dilation, bool ceil_mode) {
  return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, true);
}

Tensor avg_pool2d(const Tensor& input, std::array<int64_t, 2> kernel_size, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, bool ceil_mode, bool count_include_pad,
                  std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  profiler::Scope profile_scope("pool", op);
  const Pool2d p = window_geometry(op, input, kernel_size, stride, padding, {1, 1}, ceil_mode);
  PNEUMA_CHECK(!divisor_override || *divisor_override != 0, op, ": divisor_override must be non-zero");
  const cpu::AvgOptions options{count_include_pad, divisor_override};
  const Tensor x = input.detach().contiguous(layout(p));
  Tensor y = empty_in_layout(output_shape(input, p), input.dtype(), input.device(), p);
  const bool fast = fast_onednn(x) && cpu::avg_pool2d_onednn_supported(p, options, x.dtype());
  if (x.device().is_cuda()) cuda::avg_pool2d_forward(x, p, options, y);
  else if (fast) cpu::avg_pool2d_forward_onednn(x, p, options, y);
  else cpu::avg_pool2d_forward(x, p, options, y);
  if (autograd::needs_grad({&input})) autograd::record(std::make_shared<AvgPool2dBackward>(p, options, fast), {input}, y);
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& input, std::array<int64_t, 2> output_size) {
  const char* op = "adaptive_avg_pool2d";
  profiler::Scope profile_scope("pool", op);
  Pool2d p = planes_of(op, input);
  PNEUMA_CHECK(output_size[0] > 0 && output_size[1] > 0, op, ": output_size must be positive, got ",
               pair_str(output_size), " for input ", input.str());
  p.oh = output_size[0];
  p.ow = output_size[1];
  const Tensor x = input.detach().contiguous(layout(p));
  Tensor y = empty_in_layout(output_shape(input, p), input.dtype(), input.device(), p);
  std::optional<Pool2d> windows = fast_onednn(x) ? adaptive_as_windows(p) : std::nullopt;
  if (windows && !cpu::avg_pool2d_onednn_supported(*windows, {}, x.dtype())) windows.reset();
  if (x.device().is_cuda()) cuda::adaptive_avg_pool2d_forward(x, p, y);
  else if (windows) cpu::avg_pool2d_forward_onednn(x, *windows, {}, y);
  else cpu::adaptive_avg_pool2d_forward(x, p, y);
  if (autograd::needs_grad({&input}))
    autograd::record(std::make_shared<AdaptiveAvgPool2dBackward>(p, windows), {input}, y);
  return y;
}

}  // namespace pneuma
