#include "engine/ops/norm/norm.h"

#include <initializer_list>
#include <utility>

#include "engine/autograd/node.h"
#include "engine/core/profiler.h"
#include "engine/cpu/onednn_context.h"
#include "engine/ops/checks.h"
#include "engine/ops/norm/norm_cpu.h"
#include "engine/ops/norm/norm_cuda.h"
#include "engine/ops/norm/norm_onednn.h"
#include "engine/ops/norm/norm_types.h"

namespace pneuma {

namespace {

// The [N, C, S] geometry every batch norm kernel works on, of an input laid out in `format`: a
// channels-last [N, C, H, W] tensor is NHWC in memory, the contiguous [N * H * W, C, 1] array.
struct Geometry {
  int64_t N, C, S;
};

Geometry geometry_of(const Tensor& x, MemoryFormat format) {
  int64_t S = 1;
  for (int64_t d = 2; d < x.dim(); ++d) S *= x.size(d);
  if (format == MemoryFormat::ChannelsLast) return {x.size(0) * S, x.size(1), 1};
  return {x.size(0), x.size(1), S};
}

// The layout batch norm runs in and gives its output and input gradient: channels-last for a
// 4-d input whose strides say so (torch's suggest_memory_format, as its batch norm on both
// devices), row-major otherwise.
MemoryFormat layout_of(const Tensor& input) {
  return input.dim() == 4 ? input.suggest_memory_format() : MemoryFormat::Contiguous;
}

// Whether the CPU runs oneDNN's nhwc batch norm (norm_onednn.h: faster than the row loops, measured
// there): channels-last float32 data, and bfloat16 data with float32 parameters (autocast).
// float64, bfloat16 parameters and row-major data run the loops of norm_cpu.h.
bool runs_onednn(const Tensor& input, MemoryFormat format, DType param_dtype) {
  if (input.device().is_cuda() || format != MemoryFormat::ChannelsLast || input.numel() == 0) return false;
  if (input.dtype() == DType::Float32) return true;
  return input.dtype() == DType::BFloat16 && param_dtype == DType::Float32 && cpu::onednn_supports_bfloat16();
}

// oneDNN's [N, C, H * W] view of a channels-last [N, C, H, W] input.
Geometry image_geometry(const Shape& shape) { return {shape[0], shape[1], shape[2] * shape[3]}; }

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

// Saves the input and the statistics it was normalized with (batch statistics in
// training, a snapshot of the running ones otherwise: those may change before backward),
// and the weight for the input's gradient. A bias-only gradient needs none of them.
class BatchNormBackward final : public autograd::Node {
 public:
  BatchNormBackward(Tensor x, Tensor weight, Tensor mean, Tensor var, DType param_dtype, MemoryFormat format,
                    Geometry geometry, double eps, bool training, bool onednn, bool shift)
      : x_(std::move(x)), weight_(std::move(weight)), mean_(std::move(mean)), var_(std::move(var)),
        param_dtype_(param_dtype), format_(format), geometry_(geometry), eps_(eps), training_(training),
        onednn_(onednn), shift_(shift) {}
  const char* name() const override { return "batch_norm"; }

  std::vector<Tensor> apply(const Tensor& grad) override {
    // The gradient in the forward's layout; the input's gradient takes it too.
    const Tensor g = grad.contiguous(format_);
    const auto [N, C, S] = geometry_;
    const bool need_x = next[0] != nullptr;
    const bool need_w = next.size() > 1 && next[1] != nullptr;
    const bool need_b = next.size() > 2 && next[2] != nullptr;
    Tensor dx = need_x ? Tensor::empty(input_shapes[0], g.dtype(), g.device(), format_) : Tensor();
    // The parameters' gradients take the parameters' dtype (float32 under autocast).
    Tensor dw = need_w ? Tensor::empty({C}, param_dtype_, g.device()) : Tensor();
    Tensor db = need_b ? Tensor::empty({C}, param_dtype_, g.device()) : Tensor();
    if (onednn_ && need_x) {
      // The forward ran oneDNN (runs_onednn); parameter gradients alone are a cheap sum for the loops.
      const Geometry image = image_geometry(input_shapes[0]);
      cpu::batch_norm_backward_onednn(x_, g, image.N, image.C, image.S, mean_, var_, weight_, shift_, eps_, training_,
                                      dx, dw, db);
      return {dx, dw, db};
    }
    const auto backward = g.device().is_cuda() ? &cuda::batch_norm_backward : &cpu::batch_norm_backward;
    backward(x_, g, N, C, S, mean_, var_, weight_, eps_, training_, dx, dw, db);
    return {dx, dw, db};
  }
  void release_saved() override {
    x_ = Tensor();
    weight_ = Tensor();
    mean_ = Tensor();
    var_ = Tensor();
  }

 private:
  Tensor x_, weight_, mean_, var_;
  DType param_dtype_;
  MemoryFormat format_;
  Geometry geometry_;
  double eps_;
  bool training_;
  bool onednn_;  // the CPU's oneDNN path (runs_onednn)
  bool shift_;   // the forward had a bias: oneDNN's backward primitive matches the forward's flags
};

void check_channel_tensor(const Tensor& input, const Tensor& t, const char* what) {
  if (!t.defined()) return;
  ops::check_same_device("batch_norm", input, t);
  PNEUMA_CHECK(t.dim() == 1 && t.size(0) == input.size(1), "batch_norm: ", what, " ", t.str(),
               " should be 1-d with ", input.size(1), " elements: input ", input.str(), " has ", input.size(1),
               " channels");
}

// The dtype of the per-channel tensors: the input's, or float32 with a bfloat16 input (a
// BatchNorm under autocast keeps float32 parameters and buffers, as in torch). All defined ones
// share it; with none defined, the batch statistics are float32 for a bfloat16 input.
DType check_param_dtype(const Tensor& input, std::initializer_list<std::pair<const Tensor*, const char*>> tensors) {
  const std::pair<const Tensor*, const char*>* first = nullptr;
  for (const auto& entry : tensors) {
    const Tensor& t = *entry.first;
    if (!t.defined()) continue;
    const bool mixed = input.dtype() == DType::BFloat16 && t.dtype() == DType::Float32;
    PNEUMA_CHECK(t.dtype() == input.dtype() || mixed, "batch_norm: ", entry.second, " ", t.str(),
                 " does not match the dtype of input ", input.str(),
                 input.dtype() == DType::BFloat16 ? " (a bfloat16 input takes bfloat16 or float32 parameters)" : "");
    if (first == nullptr) {
      first = &entry;
      continue;
    }
    PNEUMA_CHECK(t.dtype() == first->first->dtype(), "batch_norm: ", entry.second, " ", t.str(),
                 " does not match the dtype of ", first->second, " ", first->first->str(),
                 ": weight, bias, running_mean and running_var share one dtype");
  }
  if (first != nullptr) return first->first->dtype();
  return input.dtype() == DType::BFloat16 ? DType::Float32 : input.dtype();
}

}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  profiler::Scope profile_scope("batch_norm", op);
  ops::check_defined(op, input);
  ops::check_floating(op, input);
  PNEUMA_CHECK(input.dim() >= 2, op, ": expected an input with channels in dim 1 ([N, C], [N, C, L], [N, C, H, W]), got ",
               input.str());
  check_channel_tensor(input, running_mean, "running_mean");
  check_channel_tensor(input, running_var, "running_var");
  check_channel_tensor(input, weight, "weight");
  check_channel_tensor(input, bias, "bias");
  const DType param_dtype = check_param_dtype(
      input, {{&weight, "weight"}, {&bias, "bias"}, {&running_mean, "running_mean"}, {&running_var, "running_var"}});
  PNEUMA_CHECK(eps >= 0, op, ": eps must be non-negative, got ", eps);
  const MemoryFormat format = layout_of(input);
  const Geometry geo = geometry_of(input, format);
  const DType stats_dtype = batch_norm_stats_dtype(input.dtype());
  if (training) {
    PNEUMA_CHECK(geo.N * geo.S > 1, op, ": expected more than 1 value per channel when training, got input ",
                 input.str());
  } else {
    PNEUMA_CHECK(running_mean.defined() && running_var.defined(), op,
                 ": running_mean and running_var must be defined in evaluation mode (training=false)");
  }

  const bool record = autograd::needs_grad({&input, &weight, &bias});
  const Tensor x = input.detach().contiguous(format);
  const Tensor w = contiguous_or_undefined(weight);
  const Tensor b = contiguous_or_undefined(bias);
  // The output in the layout the kernels ran in; as in torch, the CPU's is row-major where the
  // input is both (size-1 dims: [N, C, 1, 1], C = 1), the same memory with other strides.
  const bool row_major_strides = !input.device().is_cuda() && x.is_contiguous();
  Tensor y = Tensor::empty(input.shape(), input.dtype(), input.device(),
                           row_major_strides ? MemoryFormat::Contiguous : format);
  Tensor mean, var;
  const bool on_cuda = x.device().is_cuda();
  const bool onednn = runs_onednn(x, format, param_dtype);
  const Geometry image = onednn ? image_geometry(x.shape()) : geo;
  const auto apply = [&](const Tensor& m, const Tensor& v) {
    if (onednn) return cpu::batch_norm_forward_onednn(x, image.N, image.C, image.S, m, v, w, b, eps, false, y);
    (on_cuda ? &cuda::batch_norm_apply : &cpu::batch_norm_apply)(x, geo.N, geo.C, geo.S, m, v, w, b, eps, y);
  };
  if (training) {
    mean = Tensor::empty({geo.C}, stats_dtype, x.device());
    var = Tensor::empty({geo.C}, stats_dtype, x.device());
    if (onednn) {
      cpu::batch_norm_forward_onednn(x, image.N, image.C, image.S, mean, var, w, b, eps, true, y);
    } else {
      (on_cuda ? &cuda::batch_norm_stats : &cpu::batch_norm_stats)(x, geo.N, geo.C, geo.S, mean, var);
      apply(mean, var);
    }
    (on_cuda ? &cuda::batch_norm_update_running : &cpu::batch_norm_update_running)(running_mean, running_var, mean,
                                                                                    var, momentum, geo.N * geo.S);
  } else {
    // A graph keeps a copy: the running statistics are buffers that may be updated
    // before backward runs. bfloat16 ones are normalized with in float32 (a converted copy).
    mean = running_mean.detach().contiguous().to(stats_dtype);
    var = running_var.detach().contiguous().to(stats_dtype);
    if (record) {
      if (mean.storage() == running_mean.storage()) mean = mean.clone();
      if (var.storage() == running_var.storage()) var = var.clone();
    }
    apply(mean, var);
  }

  if (record) {
    const bool input_grad = input.requires_grad(), weight_grad = weight.defined() && weight.requires_grad();
    const bool keep = input_grad || weight_grad;
    auto node = std::make_shared<BatchNormBackward>(keep ? autograd::save(x) : Tensor(),
                                                    input_grad ? autograd::save(w) : Tensor(),
                                                    keep ? mean : Tensor(), keep ? var : Tensor(), param_dtype, format,
                                                    geo, eps, training, onednn, bias.defined());
    autograd::record(node, {input, weight, bias}, y);
  }
  return y;
}

}  // namespace pneuma
