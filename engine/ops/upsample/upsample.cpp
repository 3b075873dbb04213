#include "engine/ops/upsample/upsample.h"

#include <cmath>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/ops/checks.h"
#include "engine/ops/upsample/upsample_cpu.h"
#include "engine/ops/upsample/upsample_cuda.h"

namespace pneuma {

namespace {

enum class Mode { Nearest, Bilinear };

const char* op_name(Mode mode) { return mode == Mode::Nearest ? "upsample_nearest2d" : "upsample_bilinear2d"; }

MemoryFormat layout(const cpu::Upsample2d& u) {
  return u.channels_last ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

class UpsampleBackward final : public autograd::Node {
 public:
  UpsampleBackward(Mode mode, cpu::Upsample2d u) : mode_(mode), u_(u) {}
  const char* name() const override { return op_name(mode_); }
  std::vector<Tensor> apply(const Tensor& grad) override {
    const Tensor g = grad.contiguous(layout(u_));
    Tensor dx = Tensor::empty(input_shapes[0], g.dtype(), g.device(), layout(u_));
    const bool on_cuda = g.device().is_cuda();
    const auto backward = mode_ == Mode::Nearest
                              ? (on_cuda ? &cuda::upsample_nearest2d_backward : &cpu::upsample_nearest2d_backward)
                              : (on_cuda ? &cuda::upsample_bilinear2d_backward : &cpu::upsample_bilinear2d_backward);
    backward(g, u_, dx);
    return {dx};
  }

 private:
  Mode mode_;
  cpu::Upsample2d u_;
};

void check_input(const char* op, const Tensor& input) {
  ops::check_defined(op, input);
  ops::check_floating(op, input);
  PNEUMA_CHECK(input.dim() == 4, op, ": expected a 4-d [N, C, H, W] input, got ", input.str());
  PNEUMA_CHECK(input.size(1) > 0 && input.size(2) > 0 && input.size(3) > 0, op,
               ": expected non-zero channels, height and width, got input ", input.str());
}

// scales: the user's scale factors (0 when none), which PyTorch samples with.
Tensor upsample(Mode mode, const Tensor& input, std::array<int64_t, 2> size, bool align_corners,
                std::array<double, 2> scales) {
  const char* op = op_name(mode);
  profiler::Scope profile_scope("upsample", op);
  check_input(op, input);
  PNEUMA_CHECK(size[0] > 0 && size[1] > 0, op, ": output size must be positive, got [", size[0], ", ", size[1],
               "] for input ", input.str());
  cpu::Upsample2d u;
  u.planes = input.size(0) * input.size(1);
  u.ih = input.size(2);
  u.iw = input.size(3);
  u.oh = size[0];
  u.ow = size[1];
  u.align_corners = align_corners;
  u.scale_h = scales[0];
  u.scale_w = scales[1];
  // As PyTorch: the output and the input gradient keep the input's suggested layout.
  u.channels = input.size(1);
  u.channels_last = input.suggest_memory_format() == MemoryFormat::ChannelsLast;
  const Tensor x = input.detach().contiguous(layout(u));
  Tensor y = Tensor::empty({input.size(0), input.size(1), u.oh, u.ow}, input.dtype(), input.device(), layout(u));
  const bool on_cuda = x.device().is_cuda();
  const auto forward = mode == Mode::Nearest
                           ? (on_cuda ? &cuda::upsample_nearest2d_forward : &cpu::upsample_nearest2d_forward)
                           : (on_cuda ? &cuda::upsample_bilinear2d_forward : &cpu::upsample_bilinear2d_forward);
  forward(x, u, y);
  if (autograd::needs_grad({&input})) autograd::record(std::make_shared<UpsampleBackward>(mode, u), {input}, y);
  return y;
}

}  // namespace

Tensor upsample_nearest2d(const Tensor& input, std::array<int64_t, 2> output_size) {
  return upsample(Mode::Nearest, input, output_size, false, {0, 0});
}

Tensor upsample_bilinear2d(const Tensor& input, std::array<int64_t, 2> output_size, bool align_corners) {
  return upsample(Mode::Bilinear, input, output_size, align_corners, {0, 0});
}

Tensor interpolate(const Tensor& input, std::optional<std::array<int64_t, 2>> size,
                   std::optional<std::array<double, 2>> scale_factor, const std::string& mode,
                   std::optional<bool> align_corners, std::optional<bool> recompute_scale_factor) {
  const char* op = "interpolate";
  PNEUMA_CHECK(mode == "nearest" || mode == "bilinear", op, ": mode '", mode,
               "' is not supported (expected 'nearest' or 'bilinear')");
  const Mode m = mode == "nearest" ? Mode::Nearest : Mode::Bilinear;
  PNEUMA_CHECK(m == Mode::Bilinear || !align_corners.has_value(), op,
               ": align_corners can only be set with mode 'bilinear', not '", mode, "'");
  PNEUMA_CHECK(size.has_value() != scale_factor.has_value(), op,
               size ? ": only one of size and scale_factor should be given" : ": either size or scale_factor should be given");
  check_input(op, input);
  std::array<int64_t, 2> out{};
  std::array<double, 2> scales{0, 0};
  if (size) {
    out = *size;
  } else {
    for (int i = 0; i < 2; ++i) {
      const double s = (*scale_factor)[i];
      PNEUMA_CHECK(std::isfinite(s) && s > 0, op, ": scale_factor must be positive and finite, got [",
                   (*scale_factor)[0], ", ", (*scale_factor)[1], "]");
      out[i] = static_cast<int64_t>(std::floor(static_cast<double>(input.size(2 + i)) * s));
      PNEUMA_CHECK(out[i] > 0, op, ": scale_factor [", (*scale_factor)[0], ", ", (*scale_factor)[1],
                   "] gives an empty output for input ", input.str());
      if (!recompute_scale_factor.value_or(false)) scales[i] = s;
    }
  }
  return upsample(m, input, out, align_corners.value_or(false), scales);
}

}  // namespace pneuma
